python3 -c "
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(('localhost', 1234))
msg = b'N, 1, IBM, 10000, 100, B, 1\n'
s.send(struct.pack('>I', len(msg)) + msg)
print('Sent order, check container logs')
s.close()
"
