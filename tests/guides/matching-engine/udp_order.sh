echo "N, 1, IBM, 10000, 100, B, 1" | nc -u -w1 localhost 1235
