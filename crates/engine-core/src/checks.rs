//! The checks of a message that need no engine state, in the documented order
//! (docs/engine.md, "Order of the checks").
//!
//! They have one owner, here, because two callers need exactly the same answer: the engine,
//! which rejects with the code returned, and a threaded server's router, which must know
//! whether an order gets as far as the duplicate check (code 5) before it can decide that
//! check across engines itself.

use crate::message::{NewOrder, OrderId, Price, RejectReason, UserId};

/// True when (user, user order id) can identify an order: not both 0 (reject 10 otherwise).
/// The order index relies on it, since key 0 marks its empty buckets.
#[inline]
pub fn valid_id(user: UserId, user_order_id: OrderId) -> bool {
    user != 0 || user_order_id != 0
}

/// The checks of a new order that come before the duplicate check, first failing one wins:
/// symbol empty or longer than 8 bytes (1), user and order id both 0 (10), quantity 0 (2),
/// price above `max_price` (3). `Ok` means the order reaches the duplicate check.
#[inline]
pub fn validate_new(o: &NewOrder, max_price: Price) -> Result<(), RejectReason> {
    if o.symbol_too_long || o.symbol.is_empty() {
        return Err(RejectReason::UnknownSymbol);
    }
    if !valid_id(o.user, o.user_order_id) {
        return Err(RejectReason::InvalidOrderId);
    }
    if o.qty == 0 {
        return Err(RejectReason::InvalidQuantity);
    }
    if o.price > max_price {
        return Err(RejectReason::InvalidPrice);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Side, Symbol};

    #[test]
    fn the_first_failing_check_is_reported() {
        let ok = NewOrder {
            user: 1,
            symbol: Symbol::new(b"IBM").unwrap(),
            symbol_too_long: false,
            price: 10,
            qty: 5,
            side: Side::Buy,
            user_order_id: 1,
        };
        assert_eq!(validate_new(&ok, 10), Ok(()));
        let bad = NewOrder {
            symbol: Symbol::EMPTY,
            user: 0,
            user_order_id: 0,
            qty: 0,
            price: 11,
            ..ok
        };
        assert_eq!(validate_new(&bad, 10), Err(RejectReason::UnknownSymbol));
        let bad = NewOrder {
            symbol: ok.symbol,
            ..bad
        };
        assert_eq!(validate_new(&bad, 10), Err(RejectReason::InvalidOrderId));
        let bad = NewOrder { user: 1, ..bad };
        assert_eq!(validate_new(&bad, 10), Err(RejectReason::InvalidQuantity));
        let bad = NewOrder { qty: 1, ..bad };
        assert_eq!(validate_new(&bad, 10), Err(RejectReason::InvalidPrice));
        let long = NewOrder {
            symbol_too_long: true,
            ..ok
        };
        assert_eq!(validate_new(&long, 10), Err(RejectReason::UnknownSymbol));
        // Only the pair (0, 0) is invalid.
        assert!(valid_id(0, 1) && valid_id(1, 0) && !valid_id(0, 0));
    }
}
