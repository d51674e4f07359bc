//! Any bytes as a Kafka message value: decoding never panics; what is accepted passes the
//! checks and encodes back to the same tick.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickpipe::tick::{Reject, Tick};

fuzz_target!(|data: &[u8]| {
    if let Ok(tick) = Tick::from_json(data, chrono_tz::UTC) {
        assert_eq!(tick.validate(), Ok(()));
        assert_eq!(Tick::from_json(&tick.to_json(), chrono_tz::UTC), Ok(tick));
    }
    if let Ok(reject) = Reject::from_json(data) {
        assert_eq!(Reject::from_json(&reject.to_json()), Ok(reject));
    }
});
