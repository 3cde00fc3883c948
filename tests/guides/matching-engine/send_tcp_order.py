import socket
import struct

def send_tcp_order(host, port, msg):
    """Send order with 4-byte big-endian length prefix."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((host, port))
    sock.send(struct.pack('>I', len(msg)) + msg)

    # Read response
    length = struct.unpack('>I', sock.recv(4))[0]
    response = sock.recv(length)
    sock.close()
    return response

# Send buy order
msg = b"N, 1, AAPL, 15000, 100, B, 1\n"
response = send_tcp_order('localhost', 1234, msg)
print(f"Response: {response.decode()}")
