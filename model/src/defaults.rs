//! Defaults shared by every command and `scripts/stack`, read from `deploy/defaults.env`
//! (compiled in), so the binary and the scripts cannot drift apart.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The defaults file as shipped.
const FILE: &str = include_str!("../../deploy/defaults.env");

/// hostledger's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// Namespace of the Host and HostHistory objects.
    pub namespace: String,
    /// The events topic.
    pub events_topic: String,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// The fetchers' state topic.
    pub fetcher_state_topic: String,
    /// Partitions of the keyed topics.
    pub topic_partitions: i32,
    /// The projector's consumer group.
    pub projector_group: String,
    /// Most events in one projector batch.
    pub projector_batch_events: u32,
    /// Events folded in memory between replay writes.
    pub replay_batch_events: u32,
    /// Most API writes in flight.
    pub max_in_flight: u32,
}

/// Reads `KEY=VALUE` lines (blank lines and `#` comments skipped).
fn parse(text: &str) -> Result<Defaults, String> {
    let mut values = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: {line:?} is not KEY=VALUE", n + 1))?;
        values.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    let mut take = |key: &str| {
        values
            .remove(key)
            .ok_or_else(|| format!("{key} is missing"))
    };
    fn number<T: std::str::FromStr>(key: &str, value: String) -> Result<T, String> {
        value
            .parse()
            .map_err(|_| format!("{key}={value} is not a number"))
    }
    let defaults = Defaults {
        namespace: take("NAMESPACE")?,
        events_topic: take("EVENTS_TOPIC")?,
        dead_letter_topic: take("DEAD_LETTER_TOPIC")?,
        fetcher_state_topic: take("FETCHER_STATE_TOPIC")?,
        topic_partitions: number("TOPIC_PARTITIONS", take("TOPIC_PARTITIONS")?)?,
        projector_group: take("PROJECTOR_GROUP")?,
        projector_batch_events: number("PROJECTOR_BATCH_EVENTS", take("PROJECTOR_BATCH_EVENTS")?)?,
        replay_batch_events: number("REPLAY_BATCH_EVENTS", take("REPLAY_BATCH_EVENTS")?)?,
        max_in_flight: number("MAX_IN_FLIGHT", take("MAX_IN_FLIGHT")?)?,
    };
    match values.keys().next() {
        Some(unknown) => Err(format!("{unknown} is not a known default")),
        None => Ok(defaults),
    }
}

static DEFAULTS: LazyLock<Defaults> = LazyLock::new(|| {
    parse(FILE).unwrap_or_else(|e| panic!("deploy/defaults.env is invalid (tested): {e}"))
});

/// The defaults.
pub fn defaults() -> &'static Defaults {
    &DEFAULTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_is_valid() {
        let d = parse(FILE).expect("valid");
        assert_eq!(d.namespace, "hostledger");
        assert_eq!(d.events_topic, "hostledger.host-events");
        assert!(d.topic_partitions > 0 && d.max_in_flight > 0);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("NAMESPACE").unwrap_err().contains("not KEY=VALUE"));
        assert!(
            parse("NAMESPACE=x")
                .unwrap_err()
                .contains("EVENTS_TOPIC is missing")
        );
        let extra = format!("{FILE}\nCOLOUR=blue\n");
        assert!(parse(&extra).unwrap_err().contains("COLOUR"));
        let bad = FILE.replace("TOPIC_PARTITIONS=6", "TOPIC_PARTITIONS=six");
        assert!(parse(&bad).unwrap_err().contains("TOPIC_PARTITIONS=six"));
    }
}
