nc -z localhost 1234 && echo "TCP OK" || echo "TCP FAIL"
