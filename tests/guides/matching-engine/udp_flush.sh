echo "F" | nc -u -w1 localhost 1235
