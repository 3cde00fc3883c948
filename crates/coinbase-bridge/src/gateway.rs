//! One Coinbase FIX connection, kept alive: connect (TLS), Logon with the signature, run the
//! session (heartbeats, TestRequests, gaps, Logout), hand application messages to the role,
//! and reconnect with exponential backoff and jitter after a drop or a Logout (Coinbase logs
//! every session out on Saturdays and on deploys).

use crate::auth::{logon_signature, SignatureInput};
use crate::backoff::Backoff;
use crate::config::{Endpoint, Secret};
use crate::executions;
use crate::marketdata::MarketData;
use crate::publish::RecordSink;
use anyhow::Context as _;
use fix::session::State;
use fix::tags;
use fix::time::format_utc_millis;
use fix::{Action, FrameDecoder, Inbound, Message, Session, SessionConfig};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// What a session does with application messages.
#[derive(Debug)]
pub enum Role {
    /// Market data: subscribe on logon, publish book and trade entries.
    MarketData(Box<MarketData>),
    /// Execution reports (order entry or drop copy).
    Executions,
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::MarketData(_) => "market-data",
            Role::Executions => "executions",
        }
    }
}

/// Everything needed to log on to one gateway.
#[derive(Debug, Clone)]
pub struct GatewayParams {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// TLS configuration.
    pub tls: Arc<rustls::ClientConfig>,
    /// Certificate name to verify (default: the host).
    pub tls_server_name: Option<String>,
    /// API key (Username, and signed).
    pub api_key: String,
    /// API secret (base64).
    pub api_secret: Secret,
    /// API passphrase.
    pub passphrase: Secret,
    /// SenderCompID.
    pub sender_comp_id: String,
    /// TargetCompID.
    pub target_comp_id: String,
    /// HeartBtInt.
    pub heartbeat: Duration,
    /// 8013 CancelOrdersOnDisconnect, if any.
    pub cancel_on_disconnect: Option<String>,
    /// Send 9406=Y (drop copy).
    pub drop_copy_flag: bool,
    /// Reconnect delays.
    pub backoff: Backoff,
}

/// How one connection ended.
#[derive(Debug)]
enum Ended {
    /// Shutdown requested and done.
    Shutdown,
    /// Logout or drop; reconnect.
    Reconnect { reason: String },
}

/// Runs the gateway connection until `shutdown` turns true.
pub async fn run<S: RecordSink>(
    params: GatewayParams,
    mut role: Role,
    mut sink: S,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    let name = role.name();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut logged_on = false;
        let result =
            connect_and_run(&params, &mut role, &mut sink, &mut shutdown, &mut logged_on).await;
        match result {
            Ok(Ended::Shutdown) => return,
            Ok(Ended::Reconnect { reason }) => {
                tracing::warn!(gateway = name, addr = %params.endpoint, "session ended: {reason}")
            }
            Err(e) => {
                tracing::warn!(gateway = name, addr = %params.endpoint, "session failed: {e:#}")
            }
        }
        if logged_on {
            attempt = 0;
        }
        let delay = params.backoff.delay(attempt);
        attempt = attempt.saturating_add(1);
        tracing::info!(
            gateway = name,
            addr = %params.endpoint,
            delay_ms = delay.as_millis() as u64,
            attempt,
            "reconnecting"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn connect_and_run<S: RecordSink>(
    params: &GatewayParams,
    role: &mut Role,
    sink: &mut S,
    shutdown: &mut watch::Receiver<bool>,
    logged_on: &mut bool,
) -> anyhow::Result<Ended> {
    let io = tokio::select! {
        r = crate::tls::connect(
            params.tls.clone(),
            &params.endpoint.host,
            params.endpoint.port,
            params.tls_server_name.as_deref(),
            Duration::from_secs(15),
        ) => r?,
        _ = shutdown.changed() => return Ok(Ended::Shutdown),
    };
    tracing::info!(gateway = role.name(), addr = %params.endpoint, "connected (TLS)");
    run_session(io, params, role, sink, shutdown, logged_on).await
}

/// Builds the Coinbase Logon: standard fields from the session, then 553, 554, 95/96
/// (signature over exactly the SendingTime sent), 1137=9 and the optional flags.
pub fn build_logon(
    session: &mut Session,
    params: &GatewayParams,
    now: Instant,
) -> anyhow::Result<Vec<u8>> {
    let sending_time = format_utc_millis(SystemTime::now());
    let signature = logon_signature(
        params.api_secret.expose(),
        SignatureInput {
            sending_time: &sending_time,
            msg_type: "A",
            msg_seq_num: 1,
            api_key: &params.api_key,
            target_comp_id: &params.target_comp_id,
            passphrase: params.passphrase.expose(),
        },
    )?;
    let logon = session.logon(&sending_time, now, |b| {
        b.push(tags::USERNAME, &params.api_key)
            .push(tags::PASSWORD, params.passphrase.expose())
            .push_data(tags::RAW_DATA_LENGTH, tags::RAW_DATA, signature.as_bytes())
            .push(tags::DEFAULT_APPL_VER_ID, "9");
        if let Some(c) = &params.cancel_on_disconnect {
            b.push(tags::CANCEL_ORDERS_ON_DISCONNECT, c);
        }
        if params.drop_copy_flag {
            b.push(tags::DROP_COPY_FLAG, "Y");
        }
    })?;
    Ok(logon)
}

/// Runs one session over an established byte stream (TLS in production; tests may pass
/// any stream).
async fn run_session<IO, S>(
    mut io: IO,
    params: &GatewayParams,
    role: &mut Role,
    sink: &mut S,
    shutdown: &mut watch::Receiver<bool>,
    logged_on: &mut bool,
) -> anyhow::Result<Ended>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: RecordSink,
{
    let name = role.name();
    let cfg = SessionConfig {
        begin_string: "FIXT.1.1".into(),
        sender_comp_id: params.sender_comp_id.clone(),
        target_comp_id: params.target_comp_id.clone(),
        heartbeat_interval: params.heartbeat,
        logon_timeout: Duration::from_secs(10),
    };
    let mut session = Session::new(cfg, Instant::now());
    let logon = build_logon(&mut session, params, Instant::now())?;
    io.write_all(&logon).await.context("sending Logon")?;
    io.flush().await.context("sending Logon")?;

    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut actions: Vec<Action> = Vec::new();
    let mut outbound: Vec<Vec<u8>> = Vec::new();
    let mut shutting_down = false;

    loop {
        let deadline = tokio::time::Instant::from_std(session.next_deadline());
        tokio::select! {
            r = io.read(&mut buf) => {
                let n = r.context("reading from the gateway")?;
                if n == 0 {
                    return Ok(Ended::Reconnect { reason: "connection closed by the gateway".into() });
                }
                decoder.extend(&buf[..n]);
                loop {
                    let frame = match decoder.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => anyhow::bail!("unframeable bytes from the gateway: {e}"),
                    };
                    let msg = match Message::parse(frame) {
                        Ok(m) => m,
                        Err(e) => {
                            // FIX: a garbled message is ignored, not fatal.
                            tracing::warn!(gateway = name, "discarding invalid message: {e}");
                            continue;
                        }
                    };
                    let kind = session.on_message(&msg, Instant::now(), &mut actions)?;
                    // Gap actions come before the message they were detected on.
                    let resubscribe = handle_actions(
                        &mut session, params, role, &mut actions, &mut outbound, logged_on,
                    )?;
                    if kind == Inbound::App {
                        app_message(&mut session, role, &msg, sink, &mut outbound, resubscribe)?;
                    } else if resubscribe {
                        resubscribe_all(&mut session, role, &mut outbound)?;
                    }
                    if session.state() == State::Closed {
                        flush(&mut io, &mut outbound).await?;
                        return Ok(if shutting_down {
                            Ended::Shutdown
                        } else {
                            Ended::Reconnect { reason: closed_reason(&actions) }
                        });
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                session.on_tick(Instant::now(), &mut actions)?;
                handle_actions(&mut session, params, role, &mut actions, &mut outbound, logged_on)?;
                if session.state() == State::Closed {
                    flush(&mut io, &mut outbound).await?;
                    return Ok(if shutting_down {
                        Ended::Shutdown
                    } else {
                        Ended::Reconnect { reason: closed_reason(&actions) }
                    });
                }
            }
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                if session.state() == State::Active {
                    tracing::info!(gateway = name, "logging out");
                    outbound.push(session.logout("shutting down", Instant::now())?);
                } else {
                    return Ok(Ended::Shutdown);
                }
            }
        }
        flush(&mut io, &mut outbound).await?;
        actions.clear();
    }
}

fn closed_reason(actions: &[Action]) -> String {
    actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::LoggedOut { reason } => Some(format!("logged out by the gateway: {reason:?}")),
            Action::Disconnect { reason } => Some(reason.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "session closed".into())
}

async fn flush<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    outbound: &mut Vec<Vec<u8>>,
) -> anyhow::Result<()> {
    if outbound.is_empty() {
        return Ok(());
    }
    for m in outbound.drain(..) {
        io.write_all(&m).await.context("writing to the gateway")?;
    }
    io.flush().await.context("writing to the gateway")?;
    Ok(())
}

/// Carries out session actions; returns whether the market data must be resubscribed
/// (a MsgSeqNum gap: Coinbase cannot resend market data).
fn handle_actions(
    session: &mut Session,
    params: &GatewayParams,
    role: &mut Role,
    actions: &mut Vec<Action>,
    outbound: &mut Vec<Vec<u8>>,
    logged_on: &mut bool,
) -> anyhow::Result<bool> {
    let name = role.name();
    let mut resubscribe = false;
    for a in actions.iter() {
        match a {
            Action::Send(bytes) => outbound.push(bytes.clone()),
            Action::LoggedOn { heartbeat_secs } => {
                *logged_on = true;
                tracing::info!(
                    gateway = name,
                    addr = %params.endpoint,
                    sender = %params.sender_comp_id,
                    heartbeat_secs,
                    "logged on"
                );
                if let Role::MarketData(md) = role {
                    md.reset();
                    let symbols = md.symbols().to_vec();
                    for s in &symbols {
                        outbound.push(session.build("V", Instant::now(), |b| {
                            md.subscribe(s, b);
                        })?);
                        tracing::info!(gateway = name, symbol = %s, "subscribed");
                    }
                }
            }
            Action::Gap { expected, received } => match role {
                Role::MarketData(_) => {
                    tracing::warn!(
                        gateway = name,
                        expected,
                        received,
                        "MsgSeqNum gap: {} messages missed; resubscribing",
                        received - expected
                    );
                    resubscribe = true;
                }
                Role::Executions => tracing::error!(
                    gateway = name,
                    expected,
                    received,
                    "MsgSeqNum gap: {} execution messages missed (not resendable on a 141=Y \
                     session); check the order state out of band",
                    received - expected
                ),
            },
            Action::Rejected { ref_seq, reason } => {
                tracing::warn!(
                    gateway = name,
                    ?ref_seq,
                    "session-level reject (35=3): {reason}"
                )
            }
            Action::LoggedOut { reason } => {
                tracing::info!(gateway = name, reason = %reason, "logged out")
            }
            Action::Disconnect { reason } => {
                tracing::warn!(gateway = name, "disconnecting: {reason}")
            }
        }
    }
    // Keep LoggedOut/Disconnect for closed_reason; Send actions are already queued.
    actions.retain(|a| matches!(a, Action::LoggedOut { .. } | Action::Disconnect { .. }));
    Ok(resubscribe)
}

fn app_message<S: RecordSink>(
    session: &mut Session,
    role: &mut Role,
    msg: &Message<'_>,
    sink: &mut S,
    outbound: &mut Vec<Vec<u8>>,
    resubscribe_all_symbols: bool,
) -> anyhow::Result<()> {
    match role {
        Role::Executions => {
            executions::on_message(msg, sink);
            Ok(())
        }
        Role::MarketData(md) => {
            let mut symbols = md.on_message(msg, sink);
            if resubscribe_all_symbols {
                symbols = md.symbols().to_vec();
            }
            resubscribe(session, md, &symbols, outbound)
        }
    }
}

fn resubscribe_all(
    session: &mut Session,
    role: &mut Role,
    outbound: &mut Vec<Vec<u8>>,
) -> anyhow::Result<()> {
    if let Role::MarketData(md) = role {
        let symbols = md.symbols().to_vec();
        resubscribe(session, md, &symbols, outbound)?;
    }
    Ok(())
}

fn resubscribe(
    session: &mut Session,
    md: &mut MarketData,
    symbols: &[String],
    outbound: &mut Vec<Vec<u8>>,
) -> anyhow::Result<()> {
    for s in symbols {
        // Check first: a built message takes a sequence number and must then be sent.
        if md.has_subscription(s) {
            outbound.push(session.build("V", Instant::now(), |b| {
                md.unsubscribe(s, b);
            })?);
        }
        outbound.push(session.build("V", Instant::now(), |b| {
            md.subscribe(s, b);
        })?);
        tracing::info!(symbol = %s, "resubscribed for a fresh snapshot");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Record;
    use fix::MessageBuilder;
    use tokio::io::DuplexStream;

    fn params() -> GatewayParams {
        GatewayParams {
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: 1,
            },
            tls: crate::tls::client_config(None).unwrap(),
            tls_server_name: None,
            api_key: "KEY".into(),
            api_secret: "c2VjcmV0".parse().unwrap(),
            passphrase: "pass".parse().unwrap(),
            sender_comp_id: "KEY".into(),
            target_comp_id: "Coinbase".into(),
            heartbeat: Duration::from_secs(30),
            cancel_on_disconnect: None,
            drop_copy_flag: false,
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
        }
    }

    /// The gateway end of an in-memory connection.
    struct Gw {
        io: DuplexStream,
        dec: FrameDecoder,
    }

    impl Gw {
        async fn recv(&mut self) -> Vec<(u32, String)> {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(f) = self.dec.next_frame().unwrap() {
                    let m = Message::parse(f).unwrap();
                    return m
                        .fields()
                        .iter()
                        .map(|(t, v)| (*t, String::from_utf8_lossy(v).into_owned()))
                        .collect();
                }
                let n = self.io.read(&mut buf).await.unwrap();
                assert!(n > 0, "bridge closed");
                self.dec.extend(&buf[..n]);
            }
        }

        async fn send(&mut self, mt: &str, seq: u64, fields: &[(u32, &str)]) {
            let mut b = MessageBuilder::new("FIXT.1.1", mt);
            b.push(49, "Coinbase")
                .push(56, "KEY")
                .push_uint(34, seq)
                .push(52, "20250114-09:00:00.123");
            for (t, v) in fields {
                b.push(*t, v);
            }
            self.io.write_all(&b.finish().unwrap()).await.unwrap();
        }
    }

    fn get(m: &[(u32, String)], tag: u32) -> &str {
        m.iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    #[test]
    fn execution_logon_carries_the_optional_flags() {
        let mut p = params();
        p.cancel_on_disconnect = Some("S".into());
        p.drop_copy_flag = true;
        let cfg = SessionConfig {
            begin_string: "FIXT.1.1".into(),
            sender_comp_id: "KEY".into(),
            target_comp_id: "Coinbase".into(),
            heartbeat_interval: p.heartbeat,
            logon_timeout: Duration::from_secs(10),
        };
        let mut s = Session::new(cfg, Instant::now());
        let bytes = build_logon(&mut s, &p, Instant::now()).unwrap();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.get_str(8013), Some("S"));
        assert_eq!(m.get_str(9406), Some("Y"));
        assert_eq!(m.get_str(553), Some("KEY"));
        assert_eq!(m.get_str(1137), Some("9"));
        // Without them, neither tag appears.
        let mut s = Session::new(s.config().clone(), Instant::now());
        let bytes = build_logon(&mut s, &params(), Instant::now()).unwrap();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!((m.get(8013), m.get(9406)), (None, None));
    }

    /// A MsgSeqNum gap on market data resubscribes every symbol (unsubscribe, subscribe);
    /// an RptSeq gap resubscribes its symbol only.
    #[tokio::test]
    async fn gaps_trigger_resubscription() {
        let (bridge_io, gw_io) = tokio::io::duplex(1 << 16);
        let mut gw = Gw {
            io: gw_io,
            dec: FrameDecoder::new(),
        };
        let (_stop_tx, mut stop_rx) = watch::channel(false);
        let symbols = vec!["BTC-USD".to_string(), "ETH-USD".to_string()];
        let task = tokio::spawn(async move {
            let p = params();
            let mut role = Role::MarketData(Box::new(MarketData::new(&symbols)));
            let mut sink: Vec<Record> = Vec::new();
            let mut logged_on = false;
            let r = run_session(
                bridge_io,
                &p,
                &mut role,
                &mut sink,
                &mut stop_rx,
                &mut logged_on,
            )
            .await;
            (r.map(|e| format!("{e:?}")).map_err(|e| e.to_string()), sink)
        });
        let logon = gw.recv().await;
        assert_eq!(get(&logon, 35), "A");
        gw.send("A", 1, &[(108, "30")]).await;
        for s in ["BTC-USD", "ETH-USD"] {
            let v = gw.recv().await;
            assert_eq!((get(&v, 35), get(&v, 263), get(&v, 55)), ("V", "1", s));
        }
        // MsgSeqNum jumps from 2 to 5: resubscribe both.
        gw.send("0", 5, &[]).await;
        for s in ["BTC-USD", "ETH-USD"] {
            let un = gw.recv().await;
            assert_eq!((get(&un, 263), get(&un, 55)), ("2", s));
            let sub = gw.recv().await;
            assert_eq!((get(&sub, 263), get(&sub, 55)), ("1", s));
        }
        // RptSeq: snapshot at 10, incremental at 12 (11 missing): ETH-USD only.
        gw.send(
            "W",
            6,
            &[
                (83, "10"),
                (55, "ETH-USD"),
                (268, "1"),
                (269, "0"),
                (278, "a"),
                (270, "1"),
                (271, "1"),
            ],
        )
        .await;
        gw.send(
            "X",
            7,
            &[
                (268, "1"),
                (279, "0"),
                (269, "1"),
                (278, "b"),
                (83, "12"),
                (55, "ETH-USD"),
                (270, "2"),
                (271, "3"),
                (60, "20250114-09:00:00.123456"),
            ],
        )
        .await;
        let un = gw.recv().await;
        assert_eq!((get(&un, 263), get(&un, 55)), ("2", "ETH-USD"));
        let sub = gw.recv().await;
        assert_eq!((get(&sub, 263), get(&sub, 55)), ("1", "ETH-USD"));
        // Peer logout ends the session; the published records are in the sink.
        gw.send("5", 8, &[(58, "bye")]).await;
        let lo = gw.recv().await;
        assert_eq!(get(&lo, 35), "5");
        let (ended, sink) = task.await.unwrap();
        assert!(ended.unwrap().contains("Reconnect"));
        let values: Vec<_> = sink.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(
            values,
            vec!["BID|1|1|1736845200123", "ASK|2|3|1736845200123"]
        );
    }
}
