//! Decompression of a record batch's payload in Kafka's codecs (the batch attributes' bits
//! 0-2), bounded: the output is refused past a limit, and the buffer that receives it grows
//! only as decompressed bytes arrive, each growth asked of the caller first (who charges it
//! to the memory budget). No size that the data claims is believed before its bytes are
//! there.
//!
//! - gzip (1): one or more gzip members (`flate2`).
//! - snappy (2): a raw snappy block (librdkafka), or Java's xerial framing, told apart by its
//!   magic: `\x82SNAPPY\x00`, `i32` version, `i32` compatible version (both big-endian, not
//!   checked), then chunks of an `i32` big-endian length and a raw snappy block (`snap`).
//! - lz4 (3): LZ4 frames (`lz4_flex`), not the raw block format.
//! - zstd (4): zstd frames (`zstd`).
//!
//! The decoders' own working memory is bounded whatever the input and is not charged: it is
//! dropped before the handler that decompresses yields, so there is at most one per runtime
//! worker thread, like a thread's stack. gzip keeps a 32 KiB window; the LZ4 frame decoder
//! three blocks of at most 4 MiB (LZ4's largest); zstd its window, which a frame names and
//! which is refused past [`ZSTD_WINDOW_LOG_MAX`].

use std::fmt;
use std::io::{self, Read};

use super::records::MAX_INFLATED_BYTES;

/// A compressed batch's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Attributes 1.
    Gzip,
    /// Attributes 2.
    Snappy,
    /// Attributes 3.
    Lz4,
    /// Attributes 4.
    Zstd,
}

impl Codec {
    /// The codec of a batch whose attributes' compression bits are `bits`: `None` when
    /// uncompressed, `Err(bits)` when Kafka defines no codec for them.
    pub fn from_bits(bits: u16) -> Result<Option<Codec>, u16> {
        match bits {
            0 => Ok(None),
            1 => Ok(Some(Codec::Gzip)),
            2 => Ok(Some(Codec::Snappy)),
            3 => Ok(Some(Codec::Lz4)),
            4 => Ok(Some(Codec::Zstd)),
            other => Err(other),
        }
    }

    /// Kafka's name for it (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a payload did not decompress.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError<E> {
    /// It decompresses to more than the limit.
    TooLarge,
    /// It is not a valid stream of its codec: the codec's complaint.
    Corrupt(String),
    /// The caller refused to let the buffer grow (its memory budget is spent).
    Refused(E),
}

/// Largest zstd window (log2 of its bytes) accepted: the most one Produce may decompress to
/// ([`MAX_INFLATED_BYTES`]), since no output that fits needs a longer reach back. Frames of
/// levels 1 to 19 use 8 MiB windows at most; a frame whose window is larger (levels 20 and
/// up without a known content size) is refused as corrupt rather than given up to 128 MiB.
pub const ZSTD_WINDOW_LOG_MAX: u32 = MAX_INFLATED_BYTES.ilog2();

/// The start of an LZ4 frame (0x184D2204, little-endian).
const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
/// The start of a xerial-framed snappy stream.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// The magic and the two version fields.
const XERIAL_HEADER_LEN: usize = 16;
/// Capacity a streamed output starts at when its input is tiny.
const FIRST_CAPACITY: usize = 4 << 10;

/// Decompresses `input` in `codec`, appending to `out`, which may hold at most `limit`
/// bytes. Before `out` grows, `grow` is told by how many bytes its capacity will, and may
/// refuse. On an error `out` holds what was decompressed before it (and counts as the
/// work done).
pub fn inflate<E>(
    codec: Codec,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    grow: &mut dyn FnMut(usize) -> Result<(), E>,
) -> Result<(), InflateError<E>> {
    match codec {
        Codec::Gzip => read_bounded(
            flate2::bufread::MultiGzDecoder::new(input),
            input.len(),
            out,
            limit,
            grow,
        ),
        Codec::Snappy if input.starts_with(XERIAL_MAGIC) => xerial(input, out, limit, grow),
        Codec::Snappy => snappy_block(input, out, limit, grow),
        Codec::Lz4 => {
            let mut frames = lz4_flex::frame::FrameDecoder::new(input);
            // The decoder stops at the end of each frame, and takes a next frame's header cut
            // short for the end of its input: each frame must start with the magic.
            while !frames.get_ref().is_empty() {
                if !frames.get_ref().starts_with(&LZ4_FRAME_MAGIC) {
                    return Err(InflateError::Corrupt(format!(
                        "{} bytes that are no LZ4 frame",
                        frames.get_ref().len()
                    )));
                }
                read_bounded(&mut frames, input.len(), out, limit, grow)?;
            }
            Ok(())
        }
        Codec::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(corrupt)?;
            read_bounded(d, input.len(), out, limit, grow)
        }
    }
}

fn corrupt<E>(e: impl fmt::Display) -> InflateError<E> {
    InflateError::Corrupt(e.to_string())
}

/// Reads `r` to its end into `out`. The buffer doubles from about twice the input, never
/// past `limit + 1` bytes: that one byte more tells a stream that is too large from one that
/// fits exactly. Growing a buffer zeroes only its new part, once.
fn read_bounded<E>(
    r: impl Read,
    input_len: usize,
    out: &mut Vec<u8>,
    limit: usize,
    grow: &mut dyn FnMut(usize) -> Result<(), E>,
) -> Result<(), InflateError<E>> {
    let cap = limit.saturating_add(1);
    let mut filled = out.len();
    let mut r = r.take(cap.saturating_sub(filled) as u64);
    let result = loop {
        if filled == out.len() {
            if filled >= cap {
                break Err(InflateError::TooLarge);
            }
            let target = (filled * 2)
                .max(input_len.saturating_mul(2))
                .max(FIRST_CAPACITY)
                .min(cap);
            let extra = target.saturating_sub(out.capacity());
            if extra > 0 {
                if let Err(e) = grow(extra) {
                    break Err(InflateError::Refused(e));
                }
                out.reserve_exact(target - out.len());
            }
            out.resize(target, 0);
        }
        match r.read(&mut out[filled..]) {
            Ok(0) => break Ok(()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(corrupt(e)),
        }
    };
    out.truncate(filled);
    match result {
        Ok(()) if filled > limit => Err(InflateError::TooLarge),
        r => r,
    }
}

/// Java's xerial framing: a header, then length-prefixed raw snappy blocks.
fn xerial<E>(
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    grow: &mut dyn FnMut(usize) -> Result<(), E>,
) -> Result<(), InflateError<E>> {
    let mut rest = input.get(XERIAL_HEADER_LEN..).ok_or_else(|| {
        InflateError::Corrupt(format!(
            "xerial header of {} bytes, {XERIAL_HEADER_LEN} expected",
            input.len()
        ))
    })?;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(InflateError::Corrupt(format!(
                "xerial chunk length cut short ({} bytes)",
                rest.len()
            )));
        };
        let len = i32::from_be_bytes(*len);
        let block = usize::try_from(len)
            .ok()
            .and_then(|n| tail.get(..n))
            .ok_or_else(|| {
                InflateError::Corrupt(format!(
                    "xerial chunk of {len} bytes with {} left",
                    tail.len()
                ))
            })?;
        snappy_block(block, out, limit, grow)?;
        rest = &tail[block.len()..];
    }
    Ok(())
}

/// Most bytes one byte of raw snappy can decompress to, as a fraction: the longest copy
/// (64 bytes) from the shortest element that makes one (3 bytes; literals never expand).
const SNAPPY_MAX_EXPANSION: (usize, usize) = (64, 3);

/// One raw snappy block, whose size is stated in its preamble: believed only when the
/// block's bytes could make that many and within the limit, then decompressed in place.
fn snappy_block<E>(
    block: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    grow: &mut dyn FnMut(usize) -> Result<(), E>,
) -> Result<(), InflateError<E>> {
    let claimed = snap::raw::decompress_len(block).map_err(corrupt)?;
    let (num, den) = SNAPPY_MAX_EXPANSION;
    if claimed.saturating_mul(den) > block.len().saturating_mul(num) {
        return Err(InflateError::Corrupt(format!(
            "a {}-byte snappy block claims {claimed} bytes, more than it can hold",
            block.len()
        )));
    }
    let start = out.len();
    let end = start.saturating_add(claimed);
    if end > limit {
        return Err(InflateError::TooLarge);
    }
    let extra = end.saturating_sub(out.capacity());
    if extra > 0 {
        grow(extra).map_err(InflateError::Refused)?;
        out.reserve_exact(end - start);
    }
    out.resize(end, 0);
    match snap::raw::Decoder::new().decompress(block, &mut out[start..]) {
        Ok(n) if n == claimed => Ok(()),
        Ok(n) => {
            out.truncate(start);
            Err(InflateError::Corrupt(format!(
                "a snappy block claims {claimed} bytes and holds {n}"
            )))
        }
        Err(e) => {
            out.truncate(start);
            Err(corrupt(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Decompresses with a `grow` that records every growth it allows.
    fn inflate_counting(
        codec: Codec,
        input: &[u8],
        limit: usize,
    ) -> (Result<Vec<u8>, InflateError<()>>, usize) {
        let mut asked = 0usize;
        let mut out = Vec::new();
        let r = inflate(codec, input, &mut out, limit, &mut |n| {
            asked += n;
            Ok(())
        });
        (r.map(|()| out), asked)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::bulk::compress(data, 3).unwrap()
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_snappy(data: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(data).unwrap()
    }

    fn xerial_of(chunks: &[&[u8]]) -> Vec<u8> {
        let mut b = XERIAL_MAGIC.to_vec();
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        for c in chunks {
            let block = raw_snappy(c);
            b.extend_from_slice(&(block.len() as i32).to_be_bytes());
            b.extend_from_slice(&block);
        }
        b
    }

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_decompresses_what_its_encoder_made() {
        let data = sample();
        let cases = [
            (Codec::Gzip, gzip(&data)),
            (Codec::Snappy, raw_snappy(&data)),
            (
                Codec::Snappy,
                xerial_of(&[&data[..150_000], &data[150_000..]]),
            ),
            (Codec::Lz4, lz4(&data)),
            (Codec::Zstd, zstd(&data)),
        ];
        for (codec, input) in cases {
            let (out, _) = inflate_counting(codec, &input, 1 << 20);
            assert_eq!(out.expect("decompresses"), data, "{codec}");
        }
    }

    #[test]
    fn concatenated_gzip_members_and_lz4_frames_are_all_read() {
        let data = sample();
        let (a, b) = data.split_at(1234);
        let (out, _) = inflate_counting(Codec::Gzip, &[gzip(a), gzip(b)].concat(), 1 << 20);
        assert_eq!(out.unwrap(), data);
        let (out, _) = inflate_counting(Codec::Lz4, &[lz4(a), lz4(b)].concat(), 1 << 20);
        assert_eq!(out.unwrap(), data);
    }

    #[test]
    fn output_of_exactly_the_limit_fits_and_one_byte_more_does_not() {
        let data = sample();
        for (codec, input) in [
            (Codec::Gzip, gzip(&data)),
            (Codec::Snappy, raw_snappy(&data)),
            (Codec::Snappy, xerial_of(&[&data[..1000], &data[1000..]])),
            (Codec::Lz4, lz4(&data)),
            (Codec::Zstd, zstd(&data)),
        ] {
            let (fits, asked) = inflate_counting(codec, &input, data.len());
            assert_eq!(fits.expect("fits").len(), data.len(), "{codec}");
            assert!(asked <= data.len() + 1, "{codec}: asked for {asked}");
            let (over, asked) = inflate_counting(codec, &input, data.len() - 1);
            assert_eq!(over, Err(InflateError::TooLarge), "{codec}");
            assert!(asked <= data.len(), "{codec}: asked for {asked}");
        }
    }

    #[test]
    fn a_bomb_is_stopped_at_the_limit_having_asked_for_no_more() {
        // 256 MiB of zeros, streamed into the encoders: a few hundred KiB of gzip.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut zs = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        let mib = vec![0u8; 1 << 20];
        for _ in 0..256 {
            gz.write_all(&mib).unwrap();
            zs.write_all(&mib).unwrap();
        }
        let limit = 4 << 20;
        for (codec, input) in [
            (Codec::Gzip, gz.finish().unwrap()),
            (Codec::Zstd, zs.finish().unwrap()),
        ] {
            let (r, asked) = inflate_counting(codec, &input, limit);
            assert_eq!(r, Err(InflateError::TooLarge), "{codec}");
            assert!(asked <= limit + 1, "{codec}: the buffer grew to {asked}");
        }
    }

    #[test]
    fn a_refused_growth_stops_decompression_with_the_callers_reason() {
        let input = gzip(&sample());
        let mut out = Vec::new();
        let r = inflate(Codec::Gzip, &input, &mut out, 1 << 20, &mut |_| {
            Err("spent")
        });
        assert_eq!(r, Err(InflateError::Refused("spent")));
        assert!(out.is_empty());
    }

    #[test]
    fn a_snappy_size_claim_its_bytes_cannot_make_is_refused_unread() {
        // Preamble: varint 16 MiB; then one literal byte.
        let mut block = vec![0x80, 0x80, 0x80, 0x08];
        block.extend_from_slice(&[0x00, b'x']);
        let (r, asked) = inflate_counting(Codec::Snappy, &block, 32 << 20);
        assert!(matches!(r, Err(InflateError::Corrupt(m)) if m.contains("claims")));
        assert_eq!(asked, 0, "nothing was allocated for the claim");
    }

    #[test]
    fn broken_streams_are_corrupt_never_a_panic() {
        let data = sample();
        let half = |b: Vec<u8>| b[..b.len() / 2].to_vec();
        let xerial = xerial_of(&[&data]);
        let cases: Vec<(Codec, Vec<u8>)> = vec![
            (Codec::Gzip, half(gzip(&data))),
            (Codec::Gzip, [&gzip(&data)[..], b"junk"].concat()),
            (Codec::Gzip, b"not gzip at all".to_vec()),
            (Codec::Snappy, half(raw_snappy(&data))),
            (Codec::Snappy, Vec::new()),
            (Codec::Snappy, half(xerial.clone())),
            (Codec::Snappy, xerial[..10].to_vec()),
            (Codec::Snappy, [&xerial[..], &[0, 0]].concat()),
            (Codec::Lz4, half(lz4(&data))),
            (Codec::Lz4, [&lz4(&data)[..], b"junk"].concat()),
            (
                Codec::Lz4,
                [&lz4(&data)[..], &LZ4_FRAME_MAGIC[..], &[0x60]].concat(),
            ),
            (Codec::Lz4, b"not lz4 at all".to_vec()),
            (Codec::Zstd, half(zstd(&data))),
            (Codec::Zstd, [&zstd(&data)[..], b"junk"].concat()),
            (Codec::Zstd, b"not zstd at all".to_vec()),
        ];
        for (i, (codec, input)) in cases.iter().enumerate() {
            let (r, _) = inflate_counting(*codec, input, 1 << 20);
            assert!(
                matches!(r, Err(InflateError::Corrupt(_))),
                "case {i} ({codec}): {:?}",
                r.map(|out| out.len())
            );
        }
    }

    #[test]
    fn a_zstd_window_beyond_the_limit_is_refused() {
        let data = sample();
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.set_parameter(zstd::zstd_safe::CParameter::WindowLog(
            ZSTD_WINDOW_LOG_MAX + 1,
        ))
        .unwrap();
        e.write_all(&data).unwrap();
        let (r, _) = inflate_counting(Codec::Zstd, &e.finish().unwrap(), 1 << 20);
        assert!(matches!(r, Err(InflateError::Corrupt(_))), "{r:?}");
    }

    #[test]
    fn attribute_bits_name_kafkas_codecs_only() {
        assert_eq!(Codec::from_bits(0), Ok(None));
        assert_eq!(Codec::from_bits(4), Ok(Some(Codec::Zstd)));
        assert_eq!(Codec::from_bits(5), Err(5));
        assert_eq!(Codec::Lz4.to_string(), "lz4");
    }
}
