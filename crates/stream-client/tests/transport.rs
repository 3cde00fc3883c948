//! The client's framing against fake servers: partial reads, bad frames, early close, timeouts.

use std::io::ErrorKind;
use std::time::Duration;

use bytes::BytesMut;
use stream_client::{ClientError, ErrorCode, StreamClient};
use stream_proto::{Header, Response, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Accepts one connection, reads one request header + payload, then runs `answer`.
async fn fake<F, Fut>(answer: F) -> String
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut h = [0u8; HEADER_LEN];
        s.read_exact(&mut h).await.unwrap();
        let mut payload = vec![0u8; Header::parse(&h).length as usize];
        s.read_exact(&mut payload).await.unwrap();
        answer(s).await;
    });
    addr
}

fn topics_answer(n: usize) -> Vec<u8> {
    let topics = (0..n).map(|i| format!("topic-{i:03}")).collect();
    let r = Response::ListTopics {
        error: ErrorCode::None,
        topics,
    };
    r.to_frame().to_vec()
}

#[tokio::test]
async fn answers_split_into_single_bytes_are_reassembled() {
    let frame = topics_answer(40);
    let addr = fake(move |mut s| async move {
        s.set_nodelay(true).unwrap();
        for b in frame {
            s.write_all(&[b]).await.unwrap();
            s.flush().await.unwrap();
        }
    })
    .await;
    let mut c = StreamClient::connect(&addr).await.unwrap();
    let topics = c.list_topics().await.unwrap();
    assert_eq!(topics.len(), 40);
    assert_eq!(topics[39], "topic-039");
}

#[tokio::test]
async fn close_inside_a_frame_is_an_io_error_and_poisons_the_connection() {
    let frame = topics_answer(3);
    let addr = fake(move |mut s| async move {
        s.write_all(&frame[..frame.len() - 2]).await.unwrap();
    })
    .await;
    let mut c = StreamClient::connect(&addr).await.unwrap();
    let e = c.list_topics().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Io(io) if io.kind() == ErrorKind::UnexpectedEof),
        "{e}"
    );
    let e = c.list_topics().await.unwrap_err();
    assert!(matches!(&e, ClientError::Io(io) if io.kind() == ErrorKind::NotConnected));
}

#[tokio::test]
async fn bad_magic_and_wrong_type_are_protocol_errors() {
    let addr = fake(|mut s| async move {
        let mut h = Header::new(12, 0);
        h.magic = 0xdead_beef;
        s.write_all(&h.to_bytes()).await.unwrap();
    })
    .await;
    let mut c = StreamClient::connect(&addr).await.unwrap();
    assert!(matches!(
        c.list_topics().await.unwrap_err(),
        ClientError::Protocol(_)
    ));

    // a successful answer of another type
    let addr = fake(|mut s| async move {
        let r = Response::Metadata {
            error: ErrorCode::None,
            topics: vec![],
        };
        s.write_all(&r.to_frame()).await.unwrap();
    })
    .await;
    let mut c = StreamClient::connect(&addr).await.unwrap();
    assert!(matches!(
        c.list_topics().await.unwrap_err(),
        ClientError::Protocol(_)
    ));

    // a PROTOCOL_ERROR answer surfaces the server's code
    let addr = fake(|mut s| async move {
        let r = Response::error(99, ErrorCode::ProtocolError, "bad header");
        s.write_all(&r.to_frame()).await.unwrap();
    })
    .await;
    let mut c = StreamClient::connect(&addr).await.unwrap();
    assert_eq!(
        c.list_topics().await.unwrap_err().code(),
        Some(ErrorCode::ProtocolError)
    );
}

#[tokio::test]
async fn corrupted_message_crc_is_detected() {
    let addr = fake(|mut s| async move {
        let m = stream_proto::Message::new(
            0,
            1,
            0,
            2,
            0,
            bytes::Bytes::from("k"),
            bytes::Bytes::from("value"),
        );
        let mut bad = m.clone();
        bad.value = bytes::Bytes::from("VALUE");
        let mut records = BytesMut::new();
        stream_proto::encode_record(&mut records, &bad);
        let r = Response::Fetch(stream_proto::FetchResponse {
            error: ErrorCode::None,
            message: String::new(),
            high_watermark: 1,
            count: 1,
            records: records.freeze(),
        });
        s.write_all(&r.to_frame()).await.unwrap();
    })
    .await;
    let mut c = StreamClient::connect(&addr).await.unwrap();
    let e = c.fetch("t", 0, 0, 10).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Protocol(m) if m.contains("CRC")),
        "{e}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let addr = fake(|s| async move {
        // Hold the connection open without answering until the client gives up.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let mut c = StreamClient::connect(&addr).await.unwrap();
    c.set_timeout(Some(Duration::from_millis(200)));
    let e = c.list_topics().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Io(io) if io.kind() == ErrorKind::TimedOut),
        "{e}"
    );
    assert!(c.list_topics().await.is_err());
}

#[tokio::test]
async fn connection_refused_names_the_address() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let e = StreamClient::connect(&addr).await.err().unwrap();
    assert!(e.to_string().contains(&addr), "{e}");
}

#[tokio::test]
async fn a_cancelled_request_makes_the_connection_refuse_further_use() {
    let addr = fake(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let mut c = StreamClient::connect(&addr).await.unwrap();
    // The caller gives up (its own timeout drops the future while it waits for the answer).
    assert!(
        tokio::time::timeout(Duration::from_millis(100), c.list_topics())
            .await
            .is_err()
    );
    // A late answer would now be matched to the wrong request: refuse instead.
    let e = c.list_topics().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Io(io) if io.kind() == ErrorKind::NotConnected),
        "{e}"
    );
    assert!(e.to_string().contains("cancelled"), "{e}");
}
