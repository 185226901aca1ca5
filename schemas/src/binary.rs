//! The Avro binary datum of the current schema version (`host_event.v1.avsc`), written and
//! read by hand: the hot path of publishing and projecting. The generic Avro library stays
//! in charge of everything else (other writer versions, schema resolution, the schema work);
//! [`crate::Codec`] uses this code only for data whose writer schema has the fingerprint this
//! code was written for ([`FINGERPRINT`]), so a new schema version falls back to the generic
//! path until this module is brought up to date. The tests check, over many generated
//! events, that both paths write the same bytes and read the same events.
//!
//! The encoding, from the Avro specification: `long`/`int` and lengths as zig-zag varints;
//! `string` as a length and UTF-8 bytes; `enum` as the symbol's index; a `["null", T]` union as
//! the branch index then the value; arrays and maps as blocks of `count, items…` ended by a
//! zero count, where a negative count is followed by the block's size in bytes.

use std::collections::BTreeMap;

use crate::event::{EventKind, FieldChange, HostEvent, HostState, Lifecycle, Timestamp};

/// CRC-64-AVRO of the Parsing Canonical Form of the schema this module encodes (v1).
pub(crate) const FINGERPRINT: [u8; 8] = 0x89f5_f858_8539_5850_u64.to_le_bytes();

/// Appends the datum of `event` (no single-object header) to `out`.
pub(crate) fn encode(event: &HostEvent, out: &mut Vec<u8>) {
    string(out, &event.event_id);
    string(out, &event.host_id);
    long(out, kind_index(event.kind));
    string(out, &event.provider);
    string(out, &event.source);
    long(out, event.observed_at.unix_micros());
    let s = &event.state;
    string(out, &s.name);
    long(out, lifecycle_index(s.lifecycle));
    string(out, &s.provider_status);
    optional(out, s.region.as_deref());
    optional(out, s.zone.as_deref());
    optional(out, s.role.as_deref());
    optional(out, s.team.as_deref());
    if !s.addresses.is_empty() {
        long(out, s.addresses.len() as i64);
        for a in &s.addresses {
            string(out, a);
        }
    }
    long(out, 0);
    optional(out, s.machine_type.as_deref());
    if !s.attributes.is_empty() {
        long(out, s.attributes.len() as i64);
        for (k, v) in &s.attributes {
            string(out, k);
            string(out, v);
        }
    }
    long(out, 0);
    if !event.changes.is_empty() {
        long(out, event.changes.len() as i64);
        for c in &event.changes {
            string(out, &c.field);
            optional(out, c.old.as_deref());
            optional(out, c.new.as_deref());
        }
    }
    long(out, 0);
}

/// Reads one datum from the front of `bytes`; returns the event and the bytes after it.
pub(crate) fn decode(bytes: &[u8]) -> Result<(HostEvent, &[u8]), String> {
    let mut r = Reader { rest: bytes };
    let event_id = r.string("event_id")?;
    let host_id = r.string("host_id")?;
    let kind = r.symbol("kind", &EventKind::ALL)?;
    let provider = r.string("provider")?;
    let source = r.string("source")?;
    let observed_at = Timestamp::from_unix_micros(r.long("observed_at")?);
    let name = r.string("state.name")?;
    let lifecycle = r.symbol("state.lifecycle", &Lifecycle::ALL)?;
    let provider_status = r.string("state.provider_status")?;
    let region = r.optional("state.region")?;
    let zone = r.optional("state.zone")?;
    let role = r.optional("state.role")?;
    let team = r.optional("state.team")?;
    let mut addresses = Vec::new();
    r.blocks("state.addresses", |r| {
        addresses.push(r.string("state.addresses[]")?);
        Ok(())
    })?;
    let machine_type = r.optional("state.machine_type")?;
    let mut attributes = BTreeMap::new();
    r.blocks("state.attributes", |r| {
        let key = r.string("state.attributes key")?;
        let value = r.string("state.attributes value")?;
        attributes.insert(key, value);
        Ok(())
    })?;
    let mut changes = Vec::new();
    r.blocks("changes", |r| {
        changes.push(FieldChange {
            field: r.string("changes[].field")?,
            old: r.optional("changes[].old")?,
            new: r.optional("changes[].new")?,
        });
        Ok(())
    })?;
    let event = HostEvent {
        event_id,
        host_id,
        kind,
        provider,
        source,
        observed_at,
        state: HostState {
            name,
            lifecycle,
            provider_status,
            region,
            zone,
            role,
            team,
            addresses,
            machine_type,
            attributes,
        },
        changes,
    };
    Ok((event, r.rest))
}

fn kind_index(kind: EventKind) -> i64 {
    EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as i64
}

fn lifecycle_index(lifecycle: Lifecycle) -> i64 {
    Lifecycle::ALL
        .iter()
        .position(|l| *l == lifecycle)
        .unwrap_or(0) as i64
}

fn long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn string(out: &mut Vec<u8>, value: &str) {
    long(out, value.len() as i64);
    out.extend_from_slice(value.as_bytes());
}

fn optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => long(out, 0),
        Some(v) => {
            long(out, 1);
            string(out, v);
        }
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn long(&mut self, field: &str) -> Result<i64, String> {
        let mut n: u64 = 0;
        for (i, &b) in self.rest.iter().enumerate().take(10) {
            n |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok((n >> 1) as i64 ^ -((n & 1) as i64));
            }
        }
        Err(if self.rest.len() < 10 {
            format!("{field}: the data ends inside a number")
        } else {
            format!("{field}: a number longer than 10 bytes")
        })
    }

    fn length(&mut self, field: &str) -> Result<usize, String> {
        let n = self.long(field)?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.rest.len())
            .ok_or_else(|| {
                format!(
                    "{field}: length {n} with {} bytes left in the message",
                    self.rest.len()
                )
            })
    }

    fn string(&mut self, field: &str) -> Result<String, String> {
        let len = self.length(field)?;
        let (text, rest) = self.rest.split_at(len);
        let text = std::str::from_utf8(text)
            .map_err(|e| format!("{field}: not UTF-8 ({e})"))?
            .to_owned();
        self.rest = rest;
        Ok(text)
    }

    fn optional(&mut self, field: &str) -> Result<Option<String>, String> {
        match self.long(field)? {
            0 => Ok(None),
            1 => self.string(field).map(Some),
            n => Err(format!(
                "{field}: union branch {n}, but the union has 2 (null, string)"
            )),
        }
    }

    fn symbol<T: Copy>(&mut self, field: &str, symbols: &[T]) -> Result<T, String> {
        let n = self.long(field)?;
        usize::try_from(n)
            .ok()
            .and_then(|i| symbols.get(i))
            .copied()
            .ok_or_else(|| {
                format!(
                    "{field}: symbol index {n}, but the enum has {}",
                    symbols.len()
                )
            })
    }

    /// Reads the blocks of an array or map, calling `item` for each item.
    fn blocks(
        &mut self,
        field: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let count = self.long(field)?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long(field)?; // the block's size in bytes, not needed to read it
            }
            let count = count.unsigned_abs();
            // Every item takes at least one byte: a count beyond what is left is garbage.
            if count > self.rest.len() as u64 {
                return Err(format!(
                    "{field}: a block of {count} items with {} bytes left in the message",
                    self.rest.len()
                ));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}
