//! Market data session logic: subscriptions (35=V), snapshots (35=W), incrementals (35=X)
//! with RptSeq checks, rejects (35=Y); turns entries into `coinbase.<SYMBOL>` records.

use crate::publish::{Record, RecordSink};
use fix::decode::GroupSpec;
use fix::tags::{self, msg_type};
use fix::time::parse_utc_timestamp_millis;
use fix::{GroupEntry, Message, MessageBuilder};
use std::collections::HashMap;

/// Topic for a symbol: `coinbase.` + symbol with `-` replaced by `_`.
pub fn topic_for(symbol: &str) -> String {
    format!("coinbase.{}", symbol.replace('-', "_"))
}

const SNAPSHOT_ENTRIES: GroupSpec = GroupSpec {
    count_tag: tags::NO_MD_ENTRIES,
    delimiter: tags::MD_ENTRY_TYPE,
    members: None,
};

const INCREMENTAL_ENTRIES: GroupSpec = GroupSpec {
    count_tag: tags::NO_MD_ENTRIES,
    delimiter: tags::MD_UPDATE_ACTION,
    members: None,
};

/// Counters for what was not published and why (all also logged).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MdCounters {
    /// Incrementals at or below the RptSeq already applied (covered by a snapshot).
    pub stale: u64,
    /// RptSeq gaps seen.
    pub rpt_seq_gaps: u64,
    /// Entries without MDEntryID (order acks, which must not touch the book).
    pub acks: u64,
    /// Entries lacking a field needed for the value, or of an unknown type.
    pub malformed: u64,
}

/// Market data state for one session (reset at every logon).
#[derive(Debug)]
pub struct MarketData {
    symbols: Vec<String>,
    topics: HashMap<String, String>,
    last_rpt_seq: HashMap<String, u64>,
    req_counter: u64,
    /// MDReqID -> symbol of the live subscription.
    active_reqs: HashMap<String, String>,
    /// Counters, for logs and tests.
    pub counters: MdCounters,
}

impl MarketData {
    /// State for `symbols` (e.g. `BTC-USD`).
    pub fn new(symbols: &[String]) -> Self {
        MarketData {
            symbols: symbols.to_vec(),
            topics: symbols.iter().map(|s| (s.clone(), topic_for(s))).collect(),
            last_rpt_seq: HashMap::new(),
            req_counter: 0,
            active_reqs: HashMap::new(),
            counters: MdCounters::default(),
        }
    }

    /// The configured symbols.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// Forgets per-session state; call on every new logon (sequence numbers restart and the
    /// gateway sends fresh snapshots).
    pub fn reset(&mut self) {
        self.last_rpt_seq.clear();
        self.active_reqs.clear();
    }

    /// Fills in a subscribe (263=1) MarketDataRequest for `symbol`; returns its MDReqID.
    pub fn subscribe(&mut self, symbol: &str, b: &mut MessageBuilder) -> String {
        self.req_counter += 1;
        let id = format!("md-{symbol}-{}", self.req_counter);
        b.push(tags::MD_REQ_ID, &id)
            .push(tags::SUBSCRIPTION_REQUEST_TYPE, "1")
            .push_uint(tags::NO_RELATED_SYM, 1)
            .push(tags::SYMBOL, symbol);
        self.active_reqs.insert(id.clone(), symbol.to_owned());
        id
    }

    /// Whether `symbol` has a live subscription request.
    pub fn has_subscription(&self, symbol: &str) -> bool {
        self.active_reqs.values().any(|s| s == symbol)
    }

    /// Fills in an unsubscribe (263=2) for `symbol`'s live request, if there is one.
    pub fn unsubscribe(&mut self, symbol: &str, b: &mut MessageBuilder) -> bool {
        let Some(id) = self
            .active_reqs
            .iter()
            .find(|(_, s)| s.as_str() == symbol)
            .map(|(id, _)| id.clone())
        else {
            return false;
        };
        self.active_reqs.remove(&id);
        b.push(tags::MD_REQ_ID, &id)
            .push(tags::SUBSCRIPTION_REQUEST_TYPE, "2")
            .push_uint(tags::NO_RELATED_SYM, 1)
            .push(tags::SYMBOL, symbol);
        true
    }

    /// Handles an application message. Returns the symbols that must be resubscribed
    /// (RptSeq gap: Coinbase cannot resend, a new snapshot repairs the book).
    pub fn on_message(&mut self, msg: &Message<'_>, sink: &mut impl RecordSink) -> Vec<String> {
        let mut resubscribe = Vec::new();
        match msg.msg_type() {
            msg_type::MARKET_DATA_SNAPSHOT => self.on_snapshot(msg, sink),
            msg_type::MARKET_DATA_INCREMENTAL => self.on_incremental(msg, sink, &mut resubscribe),
            msg_type::MARKET_DATA_REQUEST_REJECT => {
                let req = msg.get_str(tags::MD_REQ_ID).unwrap_or("?");
                let code = msg.get_str(tags::MD_REQ_REJ_REASON).unwrap_or("?");
                let reason = match code {
                    "0" => "unknown symbol",
                    "1" => "duplicate MDReqID",
                    "7" => "other",
                    _ => "unspecified",
                };
                let symbol = self.active_reqs.remove(req).unwrap_or_default();
                tracing::warn!(
                    md_req_id = req,
                    symbol = %symbol,
                    code,
                    text = msg.get_str(tags::TEXT).unwrap_or(""),
                    "market data request rejected (35=Y): {reason}"
                );
            }
            msg_type::SECURITY_STATUS => {
                tracing::info!(
                    symbol = msg.get_str(tags::SYMBOL).unwrap_or("?"),
                    status = msg.get_str(326).unwrap_or("?"),
                    "security status (35=f)"
                );
            }
            other => {
                tracing::debug!(msg_type = %String::from_utf8_lossy(other), "ignored message");
            }
        }
        resubscribe
    }

    fn on_snapshot(&mut self, msg: &Message<'_>, sink: &mut impl RecordSink) {
        let Some(symbol) = msg.get_str(tags::SYMBOL) else {
            self.counters.malformed += 1;
            tracing::warn!("snapshot without Symbol (55); ignored");
            return;
        };
        let ts = match msg.get(tags::SENDING_TIME).map(parse_utc_timestamp_millis) {
            Some(Ok(ms)) => ms,
            _ => {
                self.counters.malformed += 1;
                tracing::warn!(symbol, "snapshot without a valid SendingTime (52); ignored");
                return;
            }
        };
        if let Ok(seq) = msg.get_uint(tags::RPT_SEQ) {
            self.last_rpt_seq.insert(symbol.to_owned(), seq);
        }
        let entries = match msg.group(SNAPSHOT_ENTRIES) {
            Ok(e) => e,
            Err(e) => {
                self.counters.malformed += 1;
                tracing::warn!(symbol, "malformed snapshot: {e}");
                return;
            }
        };
        tracing::debug!(symbol, entries = entries.len(), "snapshot");
        for entry in &entries {
            self.publish_entry(symbol, entry, false, ts, sink);
        }
    }

    fn on_incremental(
        &mut self,
        msg: &Message<'_>,
        sink: &mut impl RecordSink,
        resubscribe: &mut Vec<String>,
    ) {
        let entries = match msg.group(INCREMENTAL_ENTRIES) {
            Ok(e) => e,
            Err(e) => {
                self.counters.malformed += 1;
                tracing::warn!("malformed incremental: {e}");
                return;
            }
        };
        let sending_time = msg.get(tags::SENDING_TIME);
        for entry in &entries {
            let Some(symbol) = entry
                .get_str(tags::SYMBOL)
                .or_else(|| msg.get_str(tags::SYMBOL))
            else {
                self.counters.malformed += 1;
                tracing::warn!("incremental entry without Symbol (55); ignored");
                continue;
            };
            if let Some(seq) = entry.get(tags::RPT_SEQ).and_then(fix::decode::parse_uint) {
                match self.last_rpt_seq.get(symbol).copied() {
                    Some(last) if seq <= last => {
                        self.counters.stale += 1;
                        continue;
                    }
                    Some(last) if seq > last + 1 => {
                        self.counters.rpt_seq_gaps += 1;
                        tracing::warn!(
                            symbol,
                            expected = last + 1,
                            received = seq,
                            "RptSeq gap; resubscribing for a fresh snapshot"
                        );
                        if !resubscribe.iter().any(|s| s == symbol) {
                            resubscribe.push(symbol.to_owned());
                        }
                    }
                    _ => {}
                }
                self.last_rpt_seq.insert(symbol.to_owned(), seq);
            }
            let ts = match entry
                .get(tags::TRANSACT_TIME)
                .or(sending_time)
                .map(parse_utc_timestamp_millis)
            {
                Some(Ok(ms)) => ms,
                other => {
                    self.counters.malformed += 1;
                    tracing::warn!(
                        symbol,
                        "incremental entry without valid TransactTime: {other:?}"
                    );
                    continue;
                }
            };
            let delete = entry.get(tags::MD_UPDATE_ACTION) == Some(b"2");
            self.publish_entry(symbol, entry, delete, ts, sink);
        }
    }

    fn publish_entry(
        &mut self,
        symbol: &str,
        entry: &GroupEntry<'_, '_>,
        delete: bool,
        ts_ms: i64,
        sink: &mut impl RecordSink,
    ) {
        let kind = match entry.get(tags::MD_ENTRY_TYPE) {
            Some(b"0") => "BID",
            Some(b"1") => "ASK",
            Some(b"2") => "TRADE",
            other => {
                self.counters.malformed += 1;
                tracing::debug!(
                    symbol,
                    "entry type {other:?} is not bid/offer/trade; skipped"
                );
                return;
            }
        };
        let Some(order_id) = entry.get_str(tags::MD_ENTRY_ID) else {
            // Coinbase: no MDEntryID means an order ack that must not touch the book.
            self.counters.acks += 1;
            return;
        };
        let price = entry.get_str(tags::MD_ENTRY_PX);
        let size = if delete {
            Some("0")
        } else {
            entry.get_str(tags::MD_ENTRY_SIZE)
        };
        let (Some(price), Some(size)) = (price.or(delete.then_some("")), size) else {
            self.counters.malformed += 1;
            tracing::warn!(
                symbol,
                order_id,
                "entry without price (270) or size (271); skipped"
            );
            return;
        };
        let topic = self
            .topics
            .get(symbol)
            .cloned()
            .unwrap_or_else(|| topic_for(symbol));
        sink.publish(Record {
            topic,
            key: order_id.to_owned(),
            value: format!("{kind}|{price}|{size}|{ts_ms}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(mt: &str, body: impl FnOnce(&mut MessageBuilder)) -> Vec<u8> {
        let mut b = MessageBuilder::new("FIXT.1.1", mt);
        b.push(49, "Coinbase")
            .push(56, "K")
            .push_uint(34, 2)
            .push(52, "20250114-09:00:00.123");
        body(&mut b);
        b.finish().unwrap()
    }

    fn snapshot(rpt: u64) -> Vec<u8> {
        msg("W", |b| {
            b.push(262, "md-BTC-USD-1")
                .push_uint(83, rpt)
                .push(893, "Y")
                .push(55, "BTC-USD")
                .push_uint(268, 2)
                .push(269, "0")
                .push(278, "b1")
                .push(270, "45230.50")
                .push(271, "1.5")
                .push(269, "1")
                .push(278, "a1")
                .push(270, "45231.00")
                .push(271, "0.10000000");
        })
    }

    fn incr(action: &str, kind: &str, id: Option<&str>, rpt: u64, px: &str, sz: &str) -> Vec<u8> {
        msg("X", |b| {
            b.push_uint(268, 1).push(279, action).push(269, kind);
            if let Some(id) = id {
                b.push(278, id);
            }
            b.push_uint(83, rpt)
                .push(55, "BTC-USD")
                .push(270, px)
                .push(271, sz)
                .push(60, "20250114-09:00:01.000456")
                .push(5797, "1");
        })
    }

    fn run(md: &mut MarketData, frames: &[Vec<u8>]) -> (Vec<Record>, Vec<String>) {
        let mut sink = Vec::new();
        let mut resub = Vec::new();
        for f in frames {
            resub.extend(md.on_message(&Message::parse(f).unwrap(), &mut sink));
        }
        (sink, resub)
    }

    fn values(r: &[Record]) -> Vec<(String, String, String)> {
        r.iter()
            .map(|r| (r.topic.clone(), r.key.clone(), r.value.clone()))
            .collect()
    }

    #[test]
    fn snapshot_then_incrementals_in_order() {
        let mut md = MarketData::new(&["BTC-USD".into()]);
        let (recs, resub) = run(
            &mut md,
            &[
                snapshot(10),
                incr("0", "0", Some("stale"), 9, "1", "1"),
                incr("0", "0", Some("b2"), 11, "45229.99", "2"),
                incr("1", "1", Some("a1"), 12, "45231.00", "0.05"),
                incr("2", "0", Some("b1"), 13, "45230.50", "1.5"),
                incr("0", "2", Some("t1"), 14, "45231.00", "0.05"),
                incr("0", "0", None, 15, "1", "1"),
            ],
        );
        let t = "coinbase.BTC_USD".to_string();
        let s = |k: &str, v: &str| (t.clone(), k.to_string(), v.to_string());
        assert_eq!(
            values(&recs),
            vec![
                s("b1", "BID|45230.50|1.5|1736845200123"),
                s("a1", "ASK|45231.00|0.10000000|1736845200123"),
                s("b2", "BID|45229.99|2|1736845201000"),
                s("a1", "ASK|45231.00|0.05|1736845201000"),
                s("b1", "BID|45230.50|0|1736845201000"),
                s("t1", "TRADE|45231.00|0.05|1736845201000"),
            ]
        );
        assert!(resub.is_empty());
        assert_eq!(md.counters.stale, 1);
        assert_eq!(md.counters.acks, 1);
    }

    #[test]
    fn rpt_seq_gap_asks_for_resubscription_but_still_publishes() {
        let mut md = MarketData::new(&["BTC-USD".into()]);
        let (recs, resub) = run(
            &mut md,
            &[snapshot(10), incr("0", "0", Some("b9"), 20, "1.0", "2.0")],
        );
        assert_eq!(recs.len(), 3);
        assert_eq!(resub, vec!["BTC-USD".to_string()]);
        assert_eq!(md.counters.rpt_seq_gaps, 1);
    }

    #[test]
    fn subscribe_and_unsubscribe_requests() {
        let mut md = MarketData::new(&["ETH-USD".into()]);
        let mut b = MessageBuilder::new("FIXT.1.1", "V");
        let id = md.subscribe("ETH-USD", &mut b);
        let bytes = b.finish().unwrap();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.get_str(262), Some(id.as_str()));
        assert_eq!(m.get_str(263), Some("1"));
        assert_eq!(m.get_str(146), Some("1"));
        assert_eq!(m.get_str(55), Some("ETH-USD"));
        let mut b = MessageBuilder::new("FIXT.1.1", "V");
        assert!(md.unsubscribe("ETH-USD", &mut b));
        let bytes = b.finish().unwrap();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.get_str(263), Some("2"));
        assert_eq!(m.get_str(262), Some(id.as_str()));
    }

    #[test]
    fn reject_is_logged_not_published() {
        let mut md = MarketData::new(&["NOPE-USD".into()]);
        let (recs, _) = run(
            &mut md,
            &[msg("Y", |b| {
                b.push(262, "md-NOPE-USD-1")
                    .push(281, "0")
                    .push(58, "Unknown symbol");
            })],
        );
        assert!(recs.is_empty());
    }

    #[test]
    fn topic_names() {
        assert_eq!(topic_for("BTC-USD"), "coinbase.BTC_USD");
        assert_eq!(topic_for("ETH-USDC"), "coinbase.ETH_USDC");
    }
}
