//! FIX UTCTimestamp (`YYYYMMDD-HH:MM:SS[.f…]`) to and from time since the Unix epoch.
//!
//! Hand-written (a few lines of civil-calendar arithmetic) rather than pulling a date crate
//! into the workspace for two conversions. Parsing is lenient about the fraction: Coinbase
//! sends 3 digits in SendingTime and 6 in TransactTime; 0 to 9 digits are accepted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a timestamp could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTCTimestamp {value:?}: {reason}")]
pub struct TimestampError {
    /// The offending text (lossy UTF-8).
    pub value: String,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// Parses a FIX UTCTimestamp into nanoseconds since the Unix epoch.
pub fn parse_utc_timestamp_nanos(value: &[u8]) -> Result<i64, TimestampError> {
    let err = |reason| TimestampError {
        value: String::from_utf8_lossy(value).into_owned(),
        reason,
    };
    if value.len() < 17 {
        return Err(err("shorter than YYYYMMDD-HH:MM:SS"));
    }
    let digits = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
        value[range].iter().try_fold(0i64, |acc, b| {
            if b.is_ascii_digit() {
                Ok(acc * 10 + i64::from(b - b'0'))
            } else {
                Err(err("non-digit where a digit was expected"))
            }
        })
    };
    if value[8] != b'-' || value[11] != b':' || value[14] != b':' {
        return Err(err("separators are not at - : : positions"));
    }
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(12..14)?, digits(15..17)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(err("date out of range"));
    }
    // 60 is allowed for a leap second, as FIX permits.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(err("time of day out of range"));
    }
    let mut nanos = 0i64;
    if value.len() > 17 {
        let frac = &value[18..];
        if value[17] != b'.' || frac.is_empty() || frac.len() > 9 {
            return Err(err("fraction must be '.' and 1 to 9 digits"));
        }
        let f = digits(18..value.len())?;
        nanos = f * 10i64.pow(9 - frac.len() as u32);
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Ok(secs * 1_000_000_000 + nanos)
}

/// Parses a FIX UTCTimestamp into milliseconds since the Unix epoch (fraction truncated).
pub fn parse_utc_timestamp_millis(value: &[u8]) -> Result<i64, TimestampError> {
    parse_utc_timestamp_nanos(value).map(|n| n.div_euclid(1_000_000))
}

/// Formats `t` as `YYYYMMDD-HH:MM:SS.sss` (UTC, exactly 3 fractional digits), as Coinbase's
/// Logon requires for SendingTime.
pub fn format_utc_millis(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs() as i64;
    let millis = since.subsec_millis();
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}-{:02}:{:02}:{:02}.{millis:03}",
        sod / 3_600,
        (sod % 3_600) / 60,
        sod % 60
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's public-domain algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_three_and_six_digit_fractions() {
        // 2025-01-14T09:00:00Z = 1736845200 s (date -ud @1736845200).
        assert_eq!(
            parse_utc_timestamp_millis(b"20250114-09:00:00.123").unwrap(),
            1_736_845_200_123
        );
        assert_eq!(
            parse_utc_timestamp_millis(b"20250114-09:00:00.123456").unwrap(),
            1_736_845_200_123
        );
        assert_eq!(
            parse_utc_timestamp_nanos(b"20250114-09:00:00.123456").unwrap(),
            1_736_845_200_123_456_000
        );
        assert_eq!(
            parse_utc_timestamp_millis(b"20250114-09:00:00").unwrap(),
            1_736_845_200_000
        );
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bad in [
            &b""[..],
            b"2025",
            b"20250114 09:00:00",
            b"20251314-09:00:00",
            b"20250230-09:00:00",
            b"20250114-24:00:00",
            b"20250114-09:00:00.",
            b"20250114-09:00:00.1234567890",
            b"20250114-09:00:00,123",
            b"2025011a-09:00:00",
        ] {
            assert!(parse_utc_timestamp_nanos(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_exactly_three_fraction_digits() {
        let t = UNIX_EPOCH + Duration::from_millis(1_736_845_200_007);
        assert_eq!(format_utc_millis(t), "20250114-09:00:00.007");
        assert_eq!(format_utc_millis(UNIX_EPOCH), "19700101-00:00:00.000");
        // Leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!(format_utc_millis(t), "20000229-00:00:00.000");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in 0i64..8_000_000_000_000) {
            let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
            let s = format_utc_millis(t);
            prop_assert_eq!(s.len(), 21);
            prop_assert_eq!(parse_utc_timestamp_millis(s.as_bytes()).unwrap(), ms);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_utc_timestamp_nanos(&bytes);
        }
    }
}
