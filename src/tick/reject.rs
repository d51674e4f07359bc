//! A record the pipeline refused, as it travels on the dead-letter topic and lands in
//! `rejected_ticks`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::text::truncate_chars;

/// A record the pipeline refused, with why and where it came from. It goes to the dead-letter
/// topic and to `rejected_ticks`; nothing refused disappears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// Where the refused input came from (`file:line`, or `topic/partition/offset`), so a
    /// replay quarantines it once.
    pub source: String,
    /// The stage that refused it: `ingest` or `process`.
    pub stage: String,
    pub reason: String,
    /// The raw input, lossily decoded as UTF-8 and cut to [`Reject::MAX_RAW_BYTES`] bytes.
    pub raw: String,
    pub rejected_at: DateTime<Utc>,
}

impl Reject {
    /// Raw input kept per record, in bytes of UTF-8 (after lossy decoding, which turns each
    /// invalid byte into a 3-byte U+FFFD).
    pub const MAX_RAW_BYTES: usize = 64 * 1024;
    const MAX_SOURCE_CHARS: usize = 255;
    const MAX_STAGE_CHARS: usize = 16;
    const MAX_REASON_CHARS: usize = 1000;

    pub fn new(source: String, stage: &str, reason: String, raw: &[u8]) -> Self {
        // Decoding a prefix keeps a long raw input from being decoded whole.
        let head = &raw[..raw.len().min(Self::MAX_RAW_BYTES)];
        Reject {
            source,
            stage: stage.to_string(),
            reason,
            raw: String::from_utf8_lossy(head).into_owned(),
            rejected_at: Utc::now(),
        }
        .bounded()
    }

    /// Every field cut to what `rejected_ticks` stores, whoever made the record.
    fn bounded(mut self) -> Self {
        self.source = truncate_chars(&self.source, Self::MAX_SOURCE_CHARS);
        self.stage = truncate_chars(&self.stage, Self::MAX_STAGE_CHARS);
        self.reason = truncate_chars(&self.reason, Self::MAX_REASON_CHARS);
        if self.raw.len() > Self::MAX_RAW_BYTES {
            let mut cut = Self::MAX_RAW_BYTES;
            while !self.raw.is_char_boundary(cut) {
                cut -= 1;
            }
            self.raw.truncate(cut);
        }
        let year = self.rejected_at.year();
        if !(1000..=9999).contains(&year) || self.rejected_at.nanosecond() >= 1_000_000_000 {
            self.rejected_at = Utc::now();
        }
        self
    }

    /// A record MySQL itself refused (its values do not fit a column, say): quarantined with
    /// the server's reason under the same source, so a replay finds it already recorded.
    pub fn refused_by_store(source: &str, reason: &str, raw: &str) -> Self {
        Reject::new(
            source.to_string(),
            "store",
            format!("refused by MySQL: {reason}"),
            raw.as_bytes(),
        )
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a reject always serializes")
    }

    /// A dead letter from the topic, written by any producer: cut to what is stored.
    pub fn from_json(bytes: &[u8]) -> Result<Reject, String> {
        serde_json::from_slice::<Reject>(bytes)
            .map(Reject::bounded)
            .map_err(|e| format!("not a dead-letter record: {e}"))
    }
}
