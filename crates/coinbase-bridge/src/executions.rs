//! Execution reports (35=8) to `coinbase.executions` records.

use crate::publish::{Record, RecordSink};
use fix::tags::{self, msg_type};
use fix::Message;

/// Topic of execution reports.
pub const EXECUTIONS_TOPIC: &str = "coinbase.executions";

/// Turns an execution report into its record: key ClOrdID (11), value
/// `ORDER_ID|SYMBOL|SIDE|STATUS|PRICE|QTY|FILLED|AVG_PRICE` from 37, 55, 54 (as BUY/SELL),
/// 39 (OrdStatus code), 44, 38, 14 and 6. Absent fields are empty; decimals pass through.
pub fn execution_record(msg: &Message<'_>) -> Option<Record> {
    if msg.msg_type() != msg_type::EXECUTION_REPORT {
        return None;
    }
    let f = |tag| msg.get_str(tag).unwrap_or("");
    let side = match f(tags::SIDE) {
        "1" => "BUY",
        "2" => "SELL",
        other => other,
    };
    Some(Record {
        topic: EXECUTIONS_TOPIC.to_owned(),
        key: f(tags::CL_ORD_ID).to_owned(),
        value: format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            f(tags::ORDER_ID),
            f(tags::SYMBOL),
            side,
            f(tags::ORD_STATUS),
            f(tags::PRICE),
            f(tags::ORDER_QTY),
            f(tags::CUM_QTY),
            f(tags::AVG_PX),
        ),
    })
}

/// Handles an application message on the execution session.
pub fn on_message(msg: &Message<'_>, sink: &mut impl RecordSink) {
    match execution_record(msg) {
        Some(r) => {
            if r.key.is_empty() {
                tracing::debug!(value = %r.value, "execution report without ClOrdID (11)");
            }
            sink.publish(r)
        }
        None => {
            tracing::debug!(
                msg_type = %String::from_utf8_lossy(msg.msg_type()),
                text = msg.get_str(tags::TEXT).unwrap_or(""),
                "non-execution message on the execution session"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fix::MessageBuilder;

    #[test]
    fn matches_the_guide_example_and_parses_leniently() {
        let mut b = MessageBuilder::new("FIXT.1.1", "8");
        b.push(49, "Coinbase")
            .push(56, "K")
            .push_uint(34, 3)
            .push(52, "20250114-09:00:00.123456")
            .push(50, "unknown-sub-id")
            .push(369, "2")
            .push(11, "client-1")
            .push(37, "abc123")
            .push(17, "e1")
            .push(150, "F")
            .push(39, "2")
            .push(55, "BTC-USD")
            .push(54, "1")
            .push(44, "45230.50")
            .push(38, "1.0")
            .push(14, "1.0")
            .push(6, "45230.50")
            .push(60, "20250114-09:00:00.123456");
        let bytes = b.finish().unwrap();
        let r = execution_record(&Message::parse(&bytes).unwrap()).unwrap();
        assert_eq!(r.topic, "coinbase.executions");
        assert_eq!(r.key, "client-1");
        assert_eq!(r.value, "abc123|BTC-USD|BUY|2|45230.50|1.0|1.0|45230.50");
    }

    #[test]
    fn missing_fields_are_empty() {
        let mut b = MessageBuilder::new("FIXT.1.1", "8");
        b.push(11, "c")
            .push(37, "o")
            .push(39, "0")
            .push(55, "ETH-USD")
            .push(54, "2");
        let bytes = b.finish().unwrap();
        let r = execution_record(&Message::parse(&bytes).unwrap()).unwrap();
        assert_eq!(r.value, "o|ETH-USD|SELL|0||||");
    }
}
