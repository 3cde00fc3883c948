import socket
import struct

def make_binary_order(user_id, symbol, price, qty, side, order_id):
    """Create binary new order (27 bytes, big-endian)."""
    return struct.pack(
        '>BB I 8s I I B I',
        0x4D,                              # magic
        ord('N'),                          # msg_type
        user_id,
        symbol.encode().ljust(8, b'\x00'),
        price,
        qty,
        ord(side),
        order_id
    )

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
msg = make_binary_order(1, "AAPL", 15000, 100, 'B', 1)
sock.sendto(msg, ('localhost', 1235))
print(f"Sent {len(msg)} bytes: {msg.hex()}")
