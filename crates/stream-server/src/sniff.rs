//! Which protocol a connection speaks, told from its first four bytes: a Kafka request starts
//! with its big-endian size, which is at most
//! [`kafka::frame::MAX_REQUEST_BYTES`](crate::kafka::frame::MAX_REQUEST_BYTES) (so its first
//! byte is 0 or 1); anything else is STRP, whose magic (`u32` little-endian 0x53545250, bytes
//! `PRTS`) reads as a far larger size. A header with a wrong magic thus still gets STRP's
//! PROTOCOL_ERROR answer, as the protocol specifies.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The protocols served on one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Our own binary protocol.
    Strp,
    /// The Kafka protocol.
    Kafka,
}

/// Bytes read to tell the protocols apart.
pub const SNIFF_LEN: usize = 4;

/// The protocol of these first bytes.
pub fn protocol_of(first: &[u8; SNIFF_LEN]) -> Protocol {
    if u32::from_be_bytes(*first) as usize <= crate::kafka::frame::MAX_REQUEST_BYTES {
        Protocol::Kafka
    } else {
        Protocol::Strp
    }
}

/// Why no protocol was told.
#[derive(Debug)]
pub enum SniffError {
    /// The client closed (or the read failed) first.
    Closed,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// The first bytes did not arrive within the request timeout of the first one.
    Slow,
}

/// Reads the connection's first [`SNIFF_LEN`] bytes: the first within `idle` (a client may
/// connect before it has anything to ask), the rest within `request` of it.
pub async fn sniff(
    sock: &mut TcpStream,
    idle: Option<Duration>,
    request: Duration,
) -> Result<[u8; SNIFF_LEN], SniffError> {
    let mut first = [0u8; SNIFF_LEN];
    let mut got = 0;
    let first_byte = async {
        match sock.read(&mut first).await {
            Ok(0) | Err(_) => Err(SniffError::Closed),
            Ok(n) => Ok(n),
        }
    };
    got += match idle {
        Some(d) => tokio::time::timeout(d, first_byte)
            .await
            .map_err(|_| SniffError::Idle)??,
        None => first_byte.await?,
    };
    let rest = async {
        while got < SNIFF_LEN {
            match sock.read(&mut first[got..]).await {
                Ok(0) | Err(_) => return Err(SniffError::Closed),
                Ok(n) => got += n,
            }
        }
        Ok(())
    };
    tokio::time::timeout(request, rest)
        .await
        .map_err(|_| SniffError::Slow)??;
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_is_strp_and_any_kafka_size_is_not() {
        assert_eq!(protocol_of(b"PRTS"), Protocol::Strp);
        let max = crate::kafka::frame::MAX_REQUEST_BYTES as i32;
        for size in [0, 8, 1 << 20, max] {
            assert_eq!(protocol_of(&size.to_be_bytes()), Protocol::Kafka);
        }
        // The magic read as a Kafka size is far above the largest request.
        assert!(i32::from_be_bytes(*b"PRTS") > max);
        // A wrong magic is STRP's to answer (PROTOCOL_ERROR), as is a Kafka size past the
        // limit (no Kafka client sends one).
        assert_eq!(protocol_of(&0xdeadbeef_u32.to_le_bytes()), Protocol::Strp);
        assert_eq!(protocol_of(&(max + 1).to_be_bytes()), Protocol::Strp);
        assert_eq!(protocol_of(&(-1i32).to_be_bytes()), Protocol::Strp);
    }
}
