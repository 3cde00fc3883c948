//! FIX session layer as a sans-I/O state machine: the caller owns the socket and the clock,
//! feeds in parsed messages and timer ticks, and carries out the [`Action`]s returned.
//! That keeps every session rule unit-testable without sockets or sleeps.
//!
//! Rules implemented (FIXT.1.1 as Coinbase uses it):
//! - Logon with ResetSeqNumFlag (141=Y): both sequence numbers restart at 1 on every logon.
//! - Heartbeat (35=0) after HeartBtInt seconds without sending; TestRequest (35=1) after
//!   1.5 × HeartBtInt without receiving; disconnect after 2.5 × (one more interval for the
//!   TestRequest to be answered, so a peer that is just slow is not dropped).
//! - TestRequest from the peer is answered with a Heartbeat echoing TestReqID (112).
//! - Inbound MsgSeqNum above the expected one is a gap: reported as [`Action::Gap`] and then
//!   accepted (Coinbase's market data cannot be resent; the application resubscribes).
//!   Below the expected one without PossDupFlag is fatal (logout + disconnect), as FIX says.
//! - ResendRequest from the peer is answered with SequenceReset-GapFill: the bridge sends
//!   only session messages and subscriptions, none of which is worth replaying.
//! - SequenceReset (35=4) moves the expected inbound number to NewSeqNo (36).
//! - Logout from the peer is answered with Logout; our own Logout waits for the answer.

use crate::decode::Message;
use crate::encode::{EncodeError, MessageBuilder};
use crate::tags::{self, msg_type};
use std::time::{Duration, Instant, SystemTime};

/// Static parameters of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// BeginString (8), e.g. `FIXT.1.1`.
    pub begin_string: String,
    /// Our SenderCompID (49).
    pub sender_comp_id: String,
    /// The peer's CompID, our TargetCompID (56).
    pub target_comp_id: String,
    /// HeartBtInt (108).
    pub heartbeat_interval: Duration,
    /// How long to wait for the Logon answer, and for a Logout answer.
    pub logon_timeout: Duration,
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Logon not sent yet.
    Connected,
    /// Logon sent, answer awaited.
    LogonSent,
    /// Logged on.
    Active,
    /// Our Logout sent, answer awaited.
    LogoutSent,
    /// Logged out or failed: the caller closes the connection.
    Closed,
}

/// Something the caller must do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the peer.
    Send(Vec<u8>),
    /// The peer accepted our Logon.
    LoggedOn {
        /// HeartBtInt the peer echoed (seconds).
        heartbeat_secs: u64,
    },
    /// Inbound MsgSeqNum jumped: messages `expected..received` were never seen.
    Gap {
        /// The MsgSeqNum we expected.
        expected: u64,
        /// The MsgSeqNum that arrived.
        received: u64,
    },
    /// The peer rejected one of our messages at session level (35=3).
    Rejected {
        /// RefSeqNum (45) of the rejected message, when given.
        ref_seq: Option<u64>,
        /// Text (58) or SessionRejectReason (373).
        reason: String,
    },
    /// The session ended by Logout (either side); close the connection.
    LoggedOut {
        /// The peer's Text (58), if any.
        reason: String,
    },
    /// The session failed; close the connection.
    Disconnect {
        /// Why.
        reason: String,
    },
}

/// What an inbound message was, for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// A session message, fully handled here.
    Admin,
    /// An application message (market data, execution report, ...): the caller handles it.
    App,
    /// A duplicate (PossDupFlag, already-seen MsgSeqNum): ignore it.
    Duplicate,
}

/// Errors building outbound messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Encoding failed (a value contained SOH or was empty).
    #[error("cannot encode {msg_type} message: {source}")]
    Encode {
        /// MsgType being built.
        msg_type: String,
        /// Cause.
        source: EncodeError,
    },
}

/// One FIX session (one connection's worth of state).
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    next_out_seq: u64,
    next_in_seq: u64,
    last_sent: Instant,
    last_received: Instant,
    /// When the Logon or Logout we wait an answer for was sent.
    waiting_since: Instant,
    test_request: Option<u64>,
    test_request_counter: u64,
}

impl Session {
    /// A new session on a fresh connection, at `now`.
    pub fn new(cfg: SessionConfig, now: Instant) -> Self {
        Session {
            cfg,
            state: State::Connected,
            next_out_seq: 1,
            next_in_seq: 1,
            last_sent: now,
            last_received: now,
            waiting_since: now,
            test_request: None,
            test_request_counter: 0,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// MsgSeqNum the next outbound message will carry.
    pub fn next_out_seq(&self) -> u64 {
        self.next_out_seq
    }

    /// MsgSeqNum expected on the next inbound message.
    pub fn next_in_seq(&self) -> u64 {
        self.next_in_seq
    }

    /// Builds an outbound message with the standard header (49, 56, 34, 52) and the next
    /// sequence number, then `body` adds the rest. `sending_time` is passed in so callers
    /// that sign it (Coinbase's Logon) use exactly the same text.
    pub fn build_with_time(
        &mut self,
        msg_type: &str,
        sending_time: &str,
        now: Instant,
        body: impl FnOnce(&mut MessageBuilder),
    ) -> Result<Vec<u8>, SessionError> {
        let seq = self.next_out_seq;
        let bytes = self.encode(msg_type, seq, sending_time, body)?;
        self.next_out_seq += 1;
        self.last_sent = now;
        Ok(bytes)
    }

    /// As [`Session::build_with_time`], stamping the current wall-clock time.
    pub fn build(
        &mut self,
        msg_type: &str,
        now: Instant,
        body: impl FnOnce(&mut MessageBuilder),
    ) -> Result<Vec<u8>, SessionError> {
        let t = crate::time::format_utc_millis(SystemTime::now());
        self.build_with_time(msg_type, &t, now, body)
    }

    fn encode(
        &self,
        msg_type: &str,
        seq: u64,
        sending_time: &str,
        body: impl FnOnce(&mut MessageBuilder),
    ) -> Result<Vec<u8>, SessionError> {
        let mut b = MessageBuilder::new(&self.cfg.begin_string, msg_type);
        b.push(tags::SENDER_COMP_ID, &self.cfg.sender_comp_id)
            .push(tags::TARGET_COMP_ID, &self.cfg.target_comp_id)
            .push_uint(tags::MSG_SEQ_NUM, seq)
            .push(tags::SENDING_TIME, sending_time);
        body(&mut b);
        b.finish().map_err(|source| SessionError::Encode {
            msg_type: msg_type.to_owned(),
            source,
        })
    }

    /// Builds the Logon (35=A): resets both sequence numbers to 1, adds 98=0, 108 and 141=Y,
    /// then `extra` adds the venue's fields (credentials, signature, 1137...).
    pub fn logon(
        &mut self,
        sending_time: &str,
        now: Instant,
        extra: impl FnOnce(&mut MessageBuilder),
    ) -> Result<Vec<u8>, SessionError> {
        self.next_out_seq = 1;
        self.next_in_seq = 1;
        let hb = self.cfg.heartbeat_interval.as_secs().max(1);
        let bytes = self.build_with_time("A", sending_time, now, |b| {
            b.push(tags::ENCRYPT_METHOD, "0")
                .push_uint(tags::HEART_BT_INT, hb)
                .push(tags::RESET_SEQ_NUM_FLAG, "Y");
            extra(b);
        })?;
        self.state = State::LogonSent;
        self.waiting_since = now;
        Ok(bytes)
    }

    /// Builds our Logout (35=5); the session then waits for the peer's answer.
    pub fn logout(&mut self, text: &str, now: Instant) -> Result<Vec<u8>, SessionError> {
        let bytes = self.build("5", now, |b| {
            if !text.is_empty() {
                b.push(tags::TEXT, text);
            }
        })?;
        self.state = State::LogoutSent;
        self.waiting_since = now;
        Ok(bytes)
    }

    /// Handles one inbound, already verified message.
    pub fn on_message(
        &mut self,
        msg: &Message<'_>,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Result<Inbound, SessionError> {
        self.last_received = now;
        self.test_request = None;
        let mt = msg.msg_type();

        if let (Some(sender), Some(target)) =
            (msg.get(tags::SENDER_COMP_ID), msg.get(tags::TARGET_COMP_ID))
        {
            if sender != self.cfg.target_comp_id.as_bytes()
                || target != self.cfg.sender_comp_id.as_bytes()
            {
                return self.fail(
                    format!(
                        "CompID mismatch: got 49={} 56={}",
                        String::from_utf8_lossy(sender),
                        String::from_utf8_lossy(target)
                    ),
                    now,
                    out,
                );
            }
        }

        let seq = match msg.get_uint(tags::MSG_SEQ_NUM) {
            Ok(s) => s,
            Err(e) => return self.fail(format!("bad MsgSeqNum: {e}"), now, out),
        };

        // SequenceReset-Reset (no GapFillFlag) applies regardless of its own MsgSeqNum.
        if mt == msg_type::SEQUENCE_RESET && !msg.flag(tags::GAP_FILL_FLAG) {
            return self.apply_sequence_reset(msg, now, out);
        }

        if seq < self.next_in_seq {
            if msg.flag(tags::POSS_DUP_FLAG) {
                return Ok(Inbound::Duplicate);
            }
            return self.fail(
                format!("MsgSeqNum too low: expected {} got {seq}", self.next_in_seq),
                now,
                out,
            );
        }
        // A Logon always starts the sequence; otherwise a jump is a gap.
        if seq > self.next_in_seq && mt != msg_type::LOGON {
            out.push(Action::Gap {
                expected: self.next_in_seq,
                received: seq,
            });
        }
        self.next_in_seq = seq + 1;

        match mt {
            msg_type::LOGON => {
                if self.state == State::LogonSent {
                    self.state = State::Active;
                    let heartbeat_secs = msg
                        .get_uint(tags::HEART_BT_INT)
                        .unwrap_or(self.cfg.heartbeat_interval.as_secs());
                    out.push(Action::LoggedOn { heartbeat_secs });
                }
                Ok(Inbound::Admin)
            }
            msg_type::HEARTBEAT => Ok(Inbound::Admin),
            msg_type::TEST_REQUEST => {
                let id = msg.get(tags::TEST_REQ_ID).unwrap_or(b"").to_vec();
                let hb = self.build("0", now, |b| {
                    if !id.is_empty() {
                        b.push(tags::TEST_REQ_ID, &id);
                    }
                })?;
                out.push(Action::Send(hb));
                Ok(Inbound::Admin)
            }
            msg_type::RESEND_REQUEST => {
                let begin = msg.get_uint(tags::BEGIN_SEQ_NO).unwrap_or(1).max(1);
                let new_seq = self.next_out_seq;
                if begin < new_seq {
                    let t = crate::time::format_utc_millis(SystemTime::now());
                    let fill = self.encode("4", begin, &t, |b| {
                        b.push(tags::POSS_DUP_FLAG, "Y")
                            .push(tags::ORIG_SENDING_TIME, &t)
                            .push(tags::GAP_FILL_FLAG, "Y")
                            .push_uint(tags::NEW_SEQ_NO, new_seq);
                    })?;
                    self.last_sent = now;
                    out.push(Action::Send(fill));
                }
                Ok(Inbound::Admin)
            }
            msg_type::SEQUENCE_RESET => self.apply_sequence_reset(msg, now, out),
            msg_type::REJECT => {
                let reason = msg
                    .get_str(tags::TEXT)
                    .or_else(|| msg.get_str(tags::SESSION_REJECT_REASON))
                    .unwrap_or("(no reason given)")
                    .to_owned();
                out.push(Action::Rejected {
                    ref_seq: msg.get_uint(tags::REF_SEQ_NUM).ok(),
                    reason,
                });
                Ok(Inbound::Admin)
            }
            msg_type::LOGOUT => {
                let reason = msg.get_str(tags::TEXT).unwrap_or("").to_owned();
                if self.state != State::LogoutSent {
                    let reply = self.build("5", now, |_| {})?;
                    out.push(Action::Send(reply));
                }
                self.state = State::Closed;
                out.push(Action::LoggedOut { reason });
                Ok(Inbound::Admin)
            }
            _ => Ok(Inbound::App),
        }
    }

    fn apply_sequence_reset(
        &mut self,
        msg: &Message<'_>,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Result<Inbound, SessionError> {
        match msg.get_uint(tags::NEW_SEQ_NO) {
            Ok(n) if n >= self.next_in_seq || !msg.flag(tags::GAP_FILL_FLAG) => {
                self.next_in_seq = n;
                Ok(Inbound::Admin)
            }
            Ok(n) => self.fail(format!("SequenceReset to lower NewSeqNo {n}"), now, out),
            Err(e) => self.fail(format!("bad SequenceReset: {e}"), now, out),
        }
    }

    /// Fatal protocol error: best-effort Logout with the reason, then disconnect.
    fn fail(
        &mut self,
        reason: String,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Result<Inbound, SessionError> {
        if matches!(self.state, State::Active | State::LogonSent) {
            let text: String = reason.chars().filter(|c| *c != '\u{1}').collect();
            if let Ok(bytes) = self.build("5", now, |b| {
                b.push(tags::TEXT, &text);
            }) {
                out.push(Action::Send(bytes));
            }
        }
        self.state = State::Closed;
        out.push(Action::Disconnect { reason });
        Ok(Inbound::Admin)
    }

    /// Timer work: heartbeats, TestRequests, timeouts. Call at [`Session::next_deadline`]
    /// (calling more often is harmless).
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) -> Result<(), SessionError> {
        let hb = self.cfg.heartbeat_interval;
        match self.state {
            State::Connected | State::Closed => {}
            State::LogonSent => {
                if now.duration_since(self.waiting_since) >= self.cfg.logon_timeout {
                    self.state = State::Closed;
                    out.push(Action::Disconnect {
                        reason: format!("no Logon answer within {:?}", self.cfg.logon_timeout),
                    });
                }
            }
            State::LogoutSent => {
                if now.duration_since(self.waiting_since) >= self.cfg.logon_timeout {
                    self.state = State::Closed;
                    out.push(Action::Disconnect {
                        reason: "no Logout answer; closing".into(),
                    });
                }
            }
            State::Active => {
                let silent = now.duration_since(self.last_received);
                if silent >= hb * 5 / 2 {
                    self.state = State::Closed;
                    out.push(Action::Disconnect {
                        reason: format!("peer silent for {silent:?} (HeartBtInt {hb:?})"),
                    });
                    return Ok(());
                }
                if silent >= hb * 3 / 2 && self.test_request.is_none() {
                    self.test_request_counter += 1;
                    let id = self.test_request_counter;
                    let bytes = self.build("1", now, |b| {
                        b.push(tags::TEST_REQ_ID, format!("TEST{id}"));
                    })?;
                    self.test_request = Some(id);
                    out.push(Action::Send(bytes));
                }
                if now.duration_since(self.last_sent) >= hb {
                    let bytes = self.build("0", now, |_| {})?;
                    out.push(Action::Send(bytes));
                }
            }
        }
        Ok(())
    }

    /// When [`Session::on_tick`] next has something to do.
    pub fn next_deadline(&self) -> Instant {
        let hb = self.cfg.heartbeat_interval;
        match self.state {
            State::LogonSent | State::LogoutSent => self.waiting_since + self.cfg.logon_timeout,
            State::Active => {
                let recv = if self.test_request.is_some() {
                    self.last_received + hb * 5 / 2
                } else {
                    self.last_received + hb * 3 / 2
                };
                recv.min(self.last_sent + hb)
            }
            // Nothing timed; wake up rarely.
            State::Connected | State::Closed => self.last_sent + Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig {
            begin_string: "FIXT.1.1".into(),
            sender_comp_id: "KEY".into(),
            target_comp_id: "Coinbase".into(),
            heartbeat_interval: Duration::from_secs(10),
            logon_timeout: Duration::from_secs(5),
        }
    }

    /// A message from the peer (Coinbase -> KEY).
    fn peer(msg_type: &str, seq: u64, body: impl FnOnce(&mut MessageBuilder)) -> Vec<u8> {
        let mut b = MessageBuilder::new("FIXT.1.1", msg_type);
        b.push(49, "Coinbase")
            .push(56, "KEY")
            .push_uint(34, seq)
            .push(52, "20250114-09:00:00.123456");
        body(&mut b);
        b.finish().unwrap()
    }

    fn feed(s: &mut Session, bytes: &[u8], now: Instant) -> (Inbound, Vec<Action>) {
        let m = Message::parse(bytes).unwrap();
        let mut out = Vec::new();
        let r = s.on_message(&m, now, &mut out).unwrap();
        (r, out)
    }

    fn sent_types(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(b) => Some(Message::parse(b).unwrap().get_str(35).unwrap().to_owned()),
                _ => None,
            })
            .collect()
    }

    fn logged_on() -> (Session, Instant) {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), t0);
        let logon = s.logon("20250114-09:00:00.000", t0, |_| {}).unwrap();
        let m = Message::parse(&logon).unwrap();
        assert_eq!(m.get_str(34), Some("1"));
        assert_eq!(m.get_str(141), Some("Y"));
        assert_eq!(m.get_str(108), Some("10"));
        assert_eq!(m.get_str(98), Some("0"));
        let (_, a) = feed(
            &mut s,
            &peer("A", 1, |b| {
                b.push(108, "10");
            }),
            t0,
        );
        assert_eq!(a, vec![Action::LoggedOn { heartbeat_secs: 10 }]);
        assert_eq!(s.state(), State::Active);
        (s, t0)
    }

    #[test]
    fn answers_test_request_with_its_id() {
        let (mut s, t0) = logged_on();
        let (r, a) = feed(
            &mut s,
            &peer("1", 2, |b| {
                b.push(112, "abc");
            }),
            t0,
        );
        assert_eq!(r, Inbound::Admin);
        let Action::Send(bytes) = &a[0] else {
            panic!("{a:?}")
        };
        let m = Message::parse(bytes).unwrap();
        assert_eq!(m.get_str(35), Some("0"));
        assert_eq!(m.get_str(112), Some("abc"));
        assert_eq!(m.get_str(34), Some("2"));
    }

    #[test]
    fn heartbeat_test_request_then_disconnect_on_silence() {
        let (mut s, t0) = logged_on();
        let mut out = Vec::new();
        s.on_tick(t0 + Duration::from_secs(9), &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(s.next_deadline(), t0 + Duration::from_secs(10));
        s.on_tick(t0 + Duration::from_secs(10), &mut out).unwrap();
        assert_eq!(sent_types(&out), vec!["0"]);
        out.clear();
        s.on_tick(t0 + Duration::from_secs(15), &mut out).unwrap();
        assert_eq!(sent_types(&out), vec!["1"]);
        out.clear();
        s.on_tick(t0 + Duration::from_secs(25), &mut out).unwrap();
        assert!(
            matches!(out.last(), Some(Action::Disconnect { .. })),
            "{out:?}"
        );
    }

    #[test]
    fn gap_is_reported_and_accepted() {
        let (mut s, t0) = logged_on();
        let (r, a) = feed(&mut s, &peer("X", 5, |_| {}), t0);
        assert_eq!(r, Inbound::App);
        assert_eq!(
            a,
            vec![Action::Gap {
                expected: 2,
                received: 5
            }]
        );
        assert_eq!(s.next_in_seq(), 6);
        let (r, a) = feed(&mut s, &peer("X", 6, |_| {}), t0);
        assert_eq!((r, a.len()), (Inbound::App, 0));
    }

    #[test]
    fn low_sequence_number_is_fatal_unless_poss_dup() {
        let (mut s, t0) = logged_on();
        feed(&mut s, &peer("0", 2, |_| {}), t0);
        let (r, _) = feed(
            &mut s,
            &peer("X", 2, |b| {
                b.push(43, "Y");
            }),
            t0,
        );
        assert_eq!(r, Inbound::Duplicate);
        let (_, a) = feed(&mut s, &peer("X", 2, |_| {}), t0);
        assert_eq!(sent_types(&a), vec!["5"]);
        assert!(matches!(a.last(), Some(Action::Disconnect { .. })));
    }

    #[test]
    fn peer_logout_is_answered() {
        let (mut s, t0) = logged_on();
        let (_, a) = feed(
            &mut s,
            &peer("5", 2, |b| {
                b.push(58, "maintenance");
            }),
            t0,
        );
        assert_eq!(sent_types(&a), vec!["5"]);
        assert_eq!(
            a.last(),
            Some(&Action::LoggedOut {
                reason: "maintenance".into()
            })
        );
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn our_logout_waits_for_the_answer() {
        let (mut s, t0) = logged_on();
        s.logout("bye", t0).unwrap();
        let (_, a) = feed(&mut s, &peer("5", 2, |_| {}), t0);
        assert_eq!(sent_types(&a), Vec::<String>::new());
        assert!(matches!(a.last(), Some(Action::LoggedOut { .. })));
    }

    #[test]
    fn resend_request_gets_a_gap_fill() {
        let (mut s, t0) = logged_on();
        let (_, a) = feed(
            &mut s,
            &peer("2", 2, |b| {
                b.push(7, "1").push(16, "0");
            }),
            t0,
        );
        let Action::Send(bytes) = &a[0] else { panic!() };
        let m = Message::parse(bytes).unwrap();
        assert_eq!(m.get_str(35), Some("4"));
        assert_eq!(m.get_str(34), Some("1"));
        assert_eq!(m.get_str(123), Some("Y"));
        assert_eq!(m.get_str(36), Some("2"));
        // The gap fill reuses old numbers; the next real message still gets 2.
        assert_eq!(s.next_out_seq(), 2);
    }

    #[test]
    fn sequence_reset_moves_expected_number() {
        let (mut s, t0) = logged_on();
        feed(
            &mut s,
            &peer("4", 2, |b| {
                b.push(36, "10");
            }),
            t0,
        );
        assert_eq!(s.next_in_seq(), 10);
        let (_, a) = feed(&mut s, &peer("X", 10, |_| {}), t0);
        assert!(a.is_empty());
    }

    #[test]
    fn comp_id_mismatch_disconnects() {
        let (mut s, t0) = logged_on();
        let mut b = MessageBuilder::new("FIXT.1.1", "0");
        b.push(49, "Other").push(56, "KEY").push_uint(34, 2);
        let (_, a) = feed(&mut s, &b.finish().unwrap(), t0);
        assert!(matches!(a.last(), Some(Action::Disconnect { .. })));
    }

    #[test]
    fn logon_timeout() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), t0);
        s.logon("20250114-09:00:00.000", t0, |_| {}).unwrap();
        let mut out = Vec::new();
        s.on_tick(t0 + Duration::from_secs(5), &mut out).unwrap();
        assert!(matches!(out.last(), Some(Action::Disconnect { .. })));
    }
}
