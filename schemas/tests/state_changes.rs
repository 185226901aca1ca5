//! `HostState::apply_changes` undoes `HostState::changes_from`: the history kept outside the
//! Host object stores only diffs, and the audit queries rebuild every past state from them.

use hostledger_schemas::{FieldChange, HostState, Lifecycle};
use proptest::prelude::*;

fn state() -> impl Strategy<Value = HostState> {
    (
        "\\PC{1,20}",
        0usize..5,
        "[a-z]{1,8}",
        proptest::option::of("[a-z0-9-]{1,8}"),
        proptest::option::of("[a-z0-9-]{1,8}"),
        proptest::option::of("[a-z]{1,6}"),
        proptest::option::of("[a-z]{1,6}"),
        proptest::collection::vec("[0-9.]{7,15}", 0..3),
        proptest::option::of("[a-z0-9.]{1,10}"),
        proptest::collection::btree_map("[a-z_]{1,6}", "\\PC{0,12}", 0..5),
    )
        .prop_map(
            |(name, l, status, region, zone, role, team, addresses, machine, attributes)| {
                let mut s = HostState::new(name, Lifecycle::ALL[l], status);
                s.region = region;
                s.zone = zone;
                s.role = role;
                s.team = team;
                s.addresses = addresses;
                s.machine_type = machine;
                s.attributes = attributes;
                s
            },
        )
}

proptest! {
    #[test]
    fn applying_the_diff_gives_the_new_state(old in state(), new in state()) {
        let mut rebuilt = old.clone();
        rebuilt.apply_changes(&new.changes_from(&old)).expect("a diff applies");
        prop_assert_eq!(rebuilt, new);
    }
}

#[test]
fn unknown_fields_and_removed_required_fields_are_refused() {
    let mut s = HostState::new("a", Lifecycle::InService, "up");
    let unknown = FieldChange {
        field: "colour".into(),
        old: None,
        new: Some("red".into()),
    };
    assert_eq!(
        s.apply_changes(&[unknown]).unwrap_err(),
        "\"colour\" is not a host field"
    );
    let removed = FieldChange {
        field: "name".into(),
        old: Some("a".into()),
        new: None,
    };
    assert!(
        s.apply_changes(&[removed])
            .unwrap_err()
            .contains("required")
    );
    let bad_phase = FieldChange {
        field: "lifecycle".into(),
        old: None,
        new: Some("Asleep".into()),
    };
    assert!(
        s.apply_changes(&[bad_phase])
            .unwrap_err()
            .contains("Asleep")
    );
}
