echo "C, 1, 1, IBM" | nc -u -w1 localhost 1235
