//! Framed STRP transport: send request frames, read response frames, in order.
//!
//! The read side keeps a buffer and splits complete frames off it with
//! [`stream_proto::FrameDecoder`], so reads are large (many pipelined answers per syscall) and
//! reading is cancel-safe: bytes already read stay in the buffer.

use std::io;

use bytes::BytesMut;
use stream_proto::{FrameDecoder, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::error::ClientError;

/// Initial read buffer size; it grows as large answers (fetches) arrive.
const READ_BUF: usize = 64 * 1024;

/// Opens a TCP connection with Nagle disabled (request/response traffic of small frames).
pub(crate) async fn open(addr: &str) -> Result<TcpStream, ClientError> {
    let stream = TcpStream::connect(addr).await.map_err(|e| {
        ClientError::Io(io::Error::new(
            e.kind(),
            format!("cannot connect to {addr}: {e}"),
        ))
    })?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The read half: decodes response frames.
pub(crate) struct FrameReader {
    io: OwnedReadHalf,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl FrameReader {
    pub(crate) fn new(io: OwnedReadHalf) -> FrameReader {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(READ_BUF),
            decoder: FrameDecoder::new(),
        }
    }

    /// Reads the next response and checks that it answers a request of `expected_type`.
    pub(crate) async fn read_response(
        &mut self,
        expected_type: u32,
    ) -> Result<Response, ClientError> {
        let frame = loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(format!("bad response frame: {e}"))),
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(READ_BUF);
            }
            let n = self.io.read_buf(&mut self.buf).await?;
            if n == 0 {
                let detail = if self.buf.is_empty() {
                    "server closed the connection".to_string()
                } else {
                    format!(
                        "server closed the connection inside a frame ({} bytes read)",
                        self.buf.len()
                    )
                };
                return Err(ClientError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    detail,
                )));
            }
        };
        let type_id = frame.header.type_id;
        let resp = Response::decode(type_id, frame.payload)?;
        if type_id != expected_type {
            // The server answers a frame it could not read at all with PROTOCOL_ERROR; show
            // that error rather than a confusing type mismatch.
            let code = resp.error_code();
            if !code.is_ok() {
                return Err(ClientError::server(
                    code,
                    format!("answer of type {type_id} to a request of type {expected_type}"),
                ));
            }
            return Err(ClientError::Protocol(format!(
                "answer has type {type_id}, expected {expected_type}"
            )));
        }
        Ok(resp)
    }
}

/// The write half: encodes request frames into a buffer and writes them in one go.
pub(crate) struct FrameWriter {
    io: OwnedWriteHalf,
    buf: BytesMut,
}

impl FrameWriter {
    pub(crate) fn new(io: OwnedWriteHalf) -> FrameWriter {
        FrameWriter {
            io,
            buf: BytesMut::with_capacity(READ_BUF),
        }
    }

    /// Appends a request frame to the write buffer (nothing is sent until [`Self::flush`]).
    pub(crate) fn push(&mut self, req: &Request) {
        req.encode_frame(&mut self.buf);
    }

    /// Writes everything buffered.
    pub(crate) async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.buf.is_empty() {
            let res = self.io.write_all(&self.buf).await;
            self.buf.clear();
            res?;
        }
        Ok(())
    }

    /// Half-closes the connection (best effort).
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}
