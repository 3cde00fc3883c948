"""The deployment guide's Python snippet, run exactly as written against our server."""

import re
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# Verbatim from shared/guides/stream-processor-deployment.md ("Python Client Example"); used
# when the guide is not beside the repository (the guide's own text wins when it is).
EMBEDDED_SNIPPET = '''import socket
import struct

class StreamClient:
    MAGIC = 0x53545250  # "STRP"
    VERSION = 1
    
    def __init__(self, host='localhost', port=9092):
        self.host = host
        self.port = port
        self.sock = None
    
    def connect(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.connect((self.host, self.port))
    
    def send_request(self, req_type, payload):
        header = struct.pack('<IIII', self.MAGIC, self.VERSION, req_type, len(payload))
        self.sock.sendall(header + payload)
        
        # Read response header
        resp_header = self.sock.recv(16)
        _, _, _, length = struct.unpack('<IIII', resp_header)
        
        # Read response payload
        return self.sock.recv(length)
    
    def list_topics(self):
        return self.send_request(12, b'')  # LIST_TOPICS = 12
    
    def close(self):
        if self.sock:
            self.sock.close()

# Usage
client = StreamClient('your-server-ip', 9092)
client.connect()
topics = client.list_topics()
print(topics)
client.close()
'''


def guide_snippet() -> str:
    for guide in (REPO.parent / "shared" / "guides" / "stream-processor-deployment.md",
                  Path("/work/shared/guides/stream-processor-deployment.md")):
        if guide.exists():
            text = guide.read_text()
            m = re.search(r"### Python Client Example\s*```python\n(.*?)```", text, re.S)
            assert m, "the guide no longer has a Python client example"
            return m.group(1)
    return EMBEDDED_SNIPPET


def test_embedded_copy_matches_guide_when_present():
    assert guide_snippet() == EMBEDDED_SNIPPET


def test_guide_snippet_runs_unchanged(fresh_server):
    snippet = guide_snippet()
    usage = "StreamClient('your-server-ip', 9092)"
    assert usage in snippet
    script = snippet.replace(usage, "StreamClient(%r, %d)" % fresh_server.addr)

    # Empty server: LIST_TOPICS answers err 0 and no topics.
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == repr(struct.pack("<hI", 0, 0))

    # With a topic: the raw payload lists it.
    with fresh_server.client() as c:
        c.create_topic("guide-topic", 2)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    expected = struct.pack("<hII", 0, 1, len("guide-topic")) + b"guide-topic"
    assert out.stdout.strip() == repr(expected)
