//! Tag numbers and message types used by the session layer and the Coinbase bridge.
//!
//! Only what this workspace reads or writes is listed; unknown tags are kept as raw fields.

#![allow(missing_docs)] // each constant is named after its FIX field; the name is the doc

pub const ACCOUNT: u32 = 1;
pub const AVG_PX: u32 = 6;
pub const BEGIN_SEQ_NO: u32 = 7;
pub const BEGIN_STRING: u32 = 8;
pub const BODY_LENGTH: u32 = 9;
pub const CHECK_SUM: u32 = 10;
pub const CL_ORD_ID: u32 = 11;
pub const CUM_QTY: u32 = 14;
pub const END_SEQ_NO: u32 = 16;
pub const EXEC_ID: u32 = 17;
pub const LAST_PX: u32 = 31;
pub const LAST_QTY: u32 = 32;
pub const MSG_SEQ_NUM: u32 = 34;
pub const MSG_TYPE: u32 = 35;
pub const NEW_SEQ_NO: u32 = 36;
pub const ORDER_ID: u32 = 37;
pub const ORDER_QTY: u32 = 38;
pub const ORD_STATUS: u32 = 39;
pub const POSS_DUP_FLAG: u32 = 43;
pub const PRICE: u32 = 44;
pub const REF_SEQ_NUM: u32 = 45;
pub const SENDER_COMP_ID: u32 = 49;
pub const SENDING_TIME: u32 = 52;
pub const SIDE: u32 = 54;
pub const SYMBOL: u32 = 55;
pub const TARGET_COMP_ID: u32 = 56;
pub const TEXT: u32 = 58;
pub const TRANSACT_TIME: u32 = 60;
pub const SIGNATURE: u32 = 89;
pub const SECURE_DATA_LEN: u32 = 90;
pub const SECURE_DATA: u32 = 91;
pub const SIGNATURE_LENGTH: u32 = 93;
pub const RAW_DATA_LENGTH: u32 = 95;
pub const RAW_DATA: u32 = 96;
pub const ENCRYPT_METHOD: u32 = 98;
pub const HEART_BT_INT: u32 = 108;
pub const TEST_REQ_ID: u32 = 112;
pub const ORIG_SENDING_TIME: u32 = 122;
pub const GAP_FILL_FLAG: u32 = 123;
pub const RESET_SEQ_NUM_FLAG: u32 = 141;
pub const NO_RELATED_SYM: u32 = 146;
pub const EXEC_TYPE: u32 = 150;
pub const LEAVES_QTY: u32 = 151;
pub const XML_DATA_LEN: u32 = 212;
pub const XML_DATA: u32 = 213;
pub const MD_REQ_ID: u32 = 262;
pub const SUBSCRIPTION_REQUEST_TYPE: u32 = 263;
pub const MARKET_DEPTH: u32 = 264;
pub const NO_MD_ENTRY_TYPES: u32 = 267;
pub const NO_MD_ENTRIES: u32 = 268;
pub const MD_ENTRY_TYPE: u32 = 269;
pub const MD_ENTRY_PX: u32 = 270;
pub const MD_ENTRY_SIZE: u32 = 271;
pub const MD_ENTRY_ID: u32 = 278;
pub const MD_UPDATE_ACTION: u32 = 279;
pub const MD_REQ_REJ_REASON: u32 = 281;
pub const RPT_SEQ: u32 = 83;
pub const SESSION_REJECT_REASON: u32 = 373;
pub const REF_MSG_TYPE: u32 = 372;
pub const USERNAME: u32 = 553;
pub const PASSWORD: u32 = 554;
pub const LAST_FRAGMENT: u32 = 893;
pub const TRADE_ID: u32 = 1003;
pub const DEFAULT_APPL_VER_ID: u32 = 1137;
pub const AGGRESSOR_SIDE: u32 = 5797;
pub const CANCEL_ORDERS_ON_DISCONNECT: u32 = 8013;
pub const DROP_COPY_FLAG: u32 = 9406;

/// Message types (tag 35) as byte strings, for comparisons without allocation.
pub mod msg_type {
    pub const HEARTBEAT: &[u8] = b"0";
    pub const TEST_REQUEST: &[u8] = b"1";
    pub const RESEND_REQUEST: &[u8] = b"2";
    pub const REJECT: &[u8] = b"3";
    pub const SEQUENCE_RESET: &[u8] = b"4";
    pub const LOGOUT: &[u8] = b"5";
    pub const EXECUTION_REPORT: &[u8] = b"8";
    pub const LOGON: &[u8] = b"A";
    pub const MARKET_DATA_REQUEST: &[u8] = b"V";
    pub const MARKET_DATA_SNAPSHOT: &[u8] = b"W";
    pub const MARKET_DATA_INCREMENTAL: &[u8] = b"X";
    pub const MARKET_DATA_REQUEST_REJECT: &[u8] = b"Y";
    pub const SECURITY_STATUS: &[u8] = b"f";
}

/// For a length-prefixed data field's length tag, the tag of the data field it announces.
///
/// Data fields may contain SOH, so the decoder must use the announced length, not the
/// delimiter, to find their end.
pub fn data_field_for_length(tag: u32) -> Option<u32> {
    match tag {
        SECURE_DATA_LEN => Some(SECURE_DATA),
        SIGNATURE_LENGTH => Some(SIGNATURE),
        RAW_DATA_LENGTH => Some(RAW_DATA),
        XML_DATA_LEN => Some(XML_DATA),
        // EncodedIssuerLen .. EncodedListStatusTextLen pairs: len tag n announces n + 1.
        348 | 350 | 352 | 354 | 356 | 358 | 360 | 362 | 364 | 445 | 618 | 621 => Some(tag + 1),
        _ => None,
    }
}
