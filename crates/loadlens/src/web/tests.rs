//! Unit tests of the dashboard's pieces that need no server: auth helpers, load requests.

use super::*;

#[test]
fn credentials_compare_whole() {
    assert!(constant_time_eq(b"Basic abc", b"Basic abc"));
    assert!(!constant_time_eq(b"Basic abd", b"Basic abc"));
    assert!(!constant_time_eq(b"Basic ab", b"Basic abc"));
    assert!(!constant_time_eq(b"", b"Basic abc"));
}

#[test]
fn only_loopback_counts_as_private() {
    assert!(!is_exposed("127.0.0.1".parse().unwrap()));
    assert!(!is_exposed("::1".parse().unwrap()));
    assert!(is_exposed("0.0.0.0".parse().unwrap()));
    assert!(is_exposed("192.168.1.4".parse().unwrap()));
}

#[test]
fn a_start_replaces_the_profile_of_its_model() {
    let staged = LoadSettings {
        users: 5,
        stages: loadlens_core::executor::profile::parse_stages("10s:5").unwrap(),
        ..LoadSettings::default()
    };
    let l = LoadRequest {
        users: Some(9),
        rate: None,
    }
    .apply(staged.clone());
    assert_eq!((l.users, l.stages.len()), (9, 0));
    // A rate means nothing to a closed model.
    let l = LoadRequest {
        users: None,
        rate: Some(3.0),
    }
    .apply(staged);
    assert_eq!((l.users, l.stages.len()), (5, 1));
    assert!(LoadRequest::default().valid().is_err());
    assert!(LoadRequest {
        rate: Some(-1.0),
        users: None
    }
    .valid()
    .is_err());
}
