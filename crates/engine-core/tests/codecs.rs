//! Codec properties: CSV and binary round trips of every message, arbitrary bytes never make a
//! decoder panic, and whatever the CSV decoder accepts re-encodes to an equivalent line.

use engine_core::message::SYMBOL_LEN;
use engine_core::{
    binary, csv, CancelOrder, InputMsg, NewOrder, OutputMsg, RejectReason, Side, Symbol,
};
use proptest::prelude::*;

/// Symbols that survive CSV (no commas, spaces, NULs or `#`), 0 to 8 bytes.
fn symbol(min: usize) -> impl Strategy<Value = Symbol> {
    proptest::collection::vec(
        prop_oneof![
            b'A'..=b'Z',
            b'a'..=b'z',
            b'0'..=b'9',
            Just(b'.'),
            Just(b'_')
        ],
        min..=SYMBOL_LEN,
    )
    .prop_map(|b| Symbol::new(&b).unwrap())
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn reason() -> impl Strategy<Value = RejectReason> {
    (1u8..=10).prop_map(|c| RejectReason::from_code(c).unwrap())
}

fn input() -> impl Strategy<Value = InputMsg> {
    prop_oneof![
        (
            symbol(0),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            side(),
            any::<u32>()
        )
            .prop_map(
                |(symbol, user, price, qty, side, user_order_id)| InputMsg::New(NewOrder {
                    user,
                    symbol,
                    symbol_too_long: false,
                    price,
                    qty,
                    side,
                    user_order_id,
                })
            ),
        // An empty cancel symbol means "none given" in both codecs.
        (any::<u32>(), any::<u32>(), proptest::option::of(symbol(1))).prop_map(
            |(user, user_order_id, symbol)| InputMsg::Cancel(CancelOrder {
                user,
                user_order_id,
                symbol,
            })
        ),
        Just(InputMsg::Flush),
    ]
}

fn output() -> impl Strategy<Value = OutputMsg> {
    let ids = || (symbol(0), any::<u32>(), any::<u32>());
    prop_oneof![
        ids().prop_map(|(symbol, user, user_order_id)| OutputMsg::Ack {
            symbol,
            user,
            user_order_id
        }),
        ids().prop_map(|(symbol, user, user_order_id)| OutputMsg::CancelAck {
            symbol,
            user,
            user_order_id
        }),
        (symbol(1), any::<[u32; 6]>()).prop_map(|(symbol, v)| OutputMsg::Trade {
            symbol,
            buy_user: v[0],
            buy_order_id: v[1],
            sell_user: v[2],
            sell_order_id: v[3],
            price: v[4],
            qty: v[5],
        }),
        // A resting price is never 0, which is what lets the binary form use (0, 0) for "empty".
        (
            symbol(1),
            side(),
            proptest::option::of((1u32.., any::<u32>()))
        )
            .prop_map(|(symbol, side, level)| OutputMsg::TopOfBook {
                symbol,
                side,
                level
            }),
        (ids(), reason()).prop_map(|((symbol, user, user_order_id), reason)| {
            OutputMsg::Reject {
                symbol,
                user,
                user_order_id,
                reason,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn csv_input_round_trips(msg in input()) {
        let mut line = Vec::new();
        csv::encode_input(&msg, &mut line);
        prop_assert_eq!(csv::decode_input(&line), Ok(Some(msg)));
        line.extend_from_slice(b"\r\n");
        prop_assert_eq!(csv::decode_input(&line), Ok(Some(msg)));
    }

    #[test]
    fn csv_output_round_trips(msg in output()) {
        let mut line = Vec::new();
        csv::encode_output(&msg, &mut line);
        prop_assert_eq!(csv::decode_output(&line), Ok(msg));
    }

    #[test]
    fn binary_input_round_trips(msg in input()) {
        let mut bytes = Vec::new();
        binary::encode_input(&msg, &mut bytes);
        prop_assert_eq!(bytes[0], binary::MAGIC);
        prop_assert_eq!(binary::decode_input(&bytes), Ok(msg));
    }

    #[test]
    fn binary_short_cancel_round_trips(user in any::<u32>(), user_order_id in any::<u32>()) {
        // The C engine's 10-byte cancel carries no symbol.
        let mut bytes = Vec::new();
        binary::encode_short_cancel(user, user_order_id, &mut bytes);
        prop_assert_eq!(bytes.len(), binary::CANCEL_SHORT_LEN);
        let want = InputMsg::Cancel(CancelOrder { user, user_order_id, symbol: None });
        prop_assert_eq!(binary::decode_input(&bytes), Ok(want));
        // The 18-byte form without a symbol is the same message.
        let mut long = Vec::new();
        binary::encode_input(&want, &mut long);
        prop_assert_eq!(long.len(), binary::CANCEL_LEN);
        prop_assert_eq!(binary::decode_input(&long), Ok(want));
    }

    #[test]
    fn binary_cancel_of_any_other_length_is_an_error(
        body in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut bytes = vec![binary::MAGIC, b'C'];
        bytes.extend_from_slice(&body);
        let got = binary::decode_input(&bytes);
        if bytes.len() == binary::CANCEL_SHORT_LEN || bytes.len() == binary::CANCEL_LEN {
            prop_assert!(matches!(got, Ok(InputMsg::Cancel(_))));
        } else {
            let e = got.unwrap_err().0;
            prop_assert!(e.contains("wrong length for cancel") && e.contains("expected 10 or 18"), "{}", e);
        }
    }

    #[test]
    fn binary_output_round_trips(msg in output()) {
        let mut bytes = Vec::new();
        binary::encode_output(&msg, &mut bytes);
        prop_assert_eq!(binary::decode_output(&bytes), Ok(msg));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = csv::decode_input(&bytes);
        let _ = csv::decode_output(&bytes);
        let _ = binary::decode_input(&bytes);
        let _ = binary::decode_output(&bytes);
    }

    #[test]
    fn binary_bytes_with_a_valid_header_never_panic(
        ty in prop_oneof![Just(b'N'), Just(b'C'), Just(b'F'), Just(b'A'), Just(b'X'),
                          Just(b'T'), Just(b'B'), Just(b'R'), any::<u8>()],
        body in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut bytes = vec![binary::MAGIC, ty];
        bytes.extend_from_slice(&body);
        let _ = binary::decode_input(&bytes);
        let _ = binary::decode_output(&bytes);
    }

    #[test]
    fn csv_like_garbage_never_panics_and_accepted_lines_re_encode(
        fields in proptest::collection::vec(
            prop_oneof![Just("N".to_string()), Just("C".to_string()), Just("F".to_string()),
                        Just("B".to_string()), Just("s".to_string()), Just("".to_string()),
                        "[0-9]{1,11}", "[ A-Za-z0-9#-]{0,10}"],
            0..9,
        ),
    ) {
        let line = fields.join(",");
        if let Ok(Some(msg)) = csv::decode_input(line.as_bytes()) {
            let mut again = Vec::new();
            csv::encode_input(&msg, &mut again);
            let mut expected = msg;
            if let InputMsg::New(o) = &mut expected {
                // The 8 bytes kept of an over-long symbol are all that is re-encoded.
                o.symbol_too_long = false;
            }
            prop_assert_eq!(csv::decode_input(&again), Ok(Some(expected)));
        }
        let _ = csv::decode_output(line.as_bytes());
    }
}
