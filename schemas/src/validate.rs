//! Semantic checks: an event can be valid Avro and still be nonsense (an empty host id, a
//! timestamp in the year 40000, a megabyte-long attribute). Such events are poison too.

use crate::event::{HostEvent, Timestamp};

/// Longest accepted host id, in bytes.
pub const MAX_HOST_ID_LEN: usize = 512;
/// Longest accepted string value anywhere in an event, in bytes.
pub const MAX_VALUE_LEN: usize = 16 * 1024;
/// Most attributes one host may carry.
pub const MAX_ATTRIBUTES: usize = 256;
/// Earliest plausible `observed_at`: 2000-01-01T00:00:00Z.
pub const EARLIEST: Timestamp = Timestamp(946_684_800_000_000);
/// Latest plausible `observed_at`: 2200-01-01T00:00:00Z.
pub const LATEST: Timestamp = Timestamp(7_258_118_400_000_000);

/// Why a decodable event is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    /// A required string is empty.
    #[error("event {event_id}: field {field} is empty")]
    Empty {
        /// Event id (may itself be empty).
        event_id: String,
        /// Which field.
        field: &'static str,
    },
    /// A string is longer than allowed.
    #[error("event {event_id}: field {field} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Event id.
        event_id: String,
        /// Which field.
        field: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too many attributes.
    #[error("event {event_id}: {count} attributes, more than the {MAX_ATTRIBUTES} allowed")]
    TooManyAttributes {
        /// Event id.
        event_id: String,
        /// How many.
        count: usize,
    },
    /// `observed_at` outside 2000..2200.
    #[error("event {event_id}: observed_at {observed_at} is outside {EARLIEST}..{LATEST}")]
    AbsurdTime {
        /// Event id.
        event_id: String,
        /// The time found.
        observed_at: Timestamp,
    },
    /// Fields that contradict each other.
    #[error("event {event_id}: {reason}")]
    Inconsistent {
        /// Event id.
        event_id: String,
        /// What contradicts what.
        reason: String,
    },
}

/// The checks every record of the events topic shares: `required` strings not empty, the
/// host id not too long, the time plausible.
pub(crate) fn check_common(
    event_id: &str,
    host_id: &str,
    required: &[(&'static str, &str)],
    at: Timestamp,
) -> Result<(), InvalidEvent> {
    let id = || event_id.to_owned();
    for &(field, value) in required {
        if value.trim().is_empty() {
            return Err(InvalidEvent::Empty {
                event_id: id(),
                field,
            });
        }
    }
    if host_id.len() > MAX_HOST_ID_LEN {
        return Err(InvalidEvent::TooLong {
            event_id: id(),
            field: "host_id".into(),
            len: host_id.len(),
            max: MAX_HOST_ID_LEN,
        });
    }
    if !(EARLIEST..=LATEST).contains(&at) {
        return Err(InvalidEvent::AbsurdTime {
            event_id: id(),
            observed_at: at,
        });
    }
    Ok(())
}

/// Every string at most [`MAX_VALUE_LEN`] bytes; the first that is longer is named.
pub(crate) fn check_lengths<'a>(
    event_id: &str,
    strings: impl IntoIterator<Item = (String, &'a String)>,
) -> Result<(), InvalidEvent> {
    match strings.into_iter().find(|(_, v)| v.len() > MAX_VALUE_LEN) {
        Some((field, value)) => Err(InvalidEvent::TooLong {
            event_id: event_id.to_owned(),
            field,
            len: value.len(),
            max: MAX_VALUE_LEN,
        }),
        None => Ok(()),
    }
}

impl HostEvent {
    /// Checks that the event makes sense; see [`InvalidEvent`].
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        let id = || self.event_id.clone();
        check_common(
            &self.event_id,
            &self.host_id,
            &[
                ("event_id", &self.event_id),
                ("host_id", &self.host_id),
                ("provider", &self.provider),
                ("source", &self.source),
                ("state.name", &self.state.name),
            ],
            self.observed_at,
        )?;
        if self.state.attributes.len() > MAX_ATTRIBUTES {
            return Err(InvalidEvent::TooManyAttributes {
                event_id: id(),
                count: self.state.attributes.len(),
            });
        }
        let s = &self.state;
        let strings = [
            ("state.name", Some(&s.name)),
            ("state.provider_status", Some(&s.provider_status)),
            ("state.region", s.region.as_ref()),
            ("state.zone", s.zone.as_ref()),
            ("state.role", s.role.as_ref()),
            ("state.team", s.team.as_ref()),
            ("state.machine_type", s.machine_type.as_ref()),
        ];
        let named = strings
            .into_iter()
            .filter_map(|(f, v)| v.map(|v| (f.to_owned(), v)));
        let attrs = s.attributes.iter().flat_map(|(k, v)| {
            [
                (format!("state.attributes key {k:.40}"), k),
                (format!("state.attributes.{k:.40}"), v),
            ]
        });
        let addrs = s
            .addresses
            .iter()
            .map(|a| ("state.addresses".to_owned(), a));
        check_lengths(&self.event_id, named.chain(attrs).chain(addrs))
    }
}
