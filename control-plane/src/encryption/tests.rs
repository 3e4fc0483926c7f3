use std::sync::Arc;

use drover_proto::Object;
use serde_json::json;

use super::*;

const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

fn key_file(providers: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
    )
}

fn aesgcm(keys: &[(&str, &str)]) -> String {
    let mut s = "  - aesgcm:\n      keys:\n".to_string();
    for (name, secret) in keys {
        s.push_str(&format!("      - name: {name}\n        secret: {secret}\n"));
    }
    s
}

fn encryption(keys: &[(&str, &str)]) -> SecretEncryption {
    SecretEncryption::new(Some(KeyConfig::parse(&key_file(&aesgcm(keys))).unwrap()))
}

fn secret(name: &str) -> Object {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default", "annotations": {
            "drover.io/last-applied-configuration": "{\"stringData\":{\"password\":\"hunter2\"}}",
            "team": "db"
        }},
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg=="}
    }))
    .unwrap()
}

#[test]
fn a_sealed_secret_holds_no_plaintext_and_opens_to_the_original() {
    let enc = encryption(&[("a", KEY_A)]);
    let sealed = enc.seal(secret("db"));
    let text = String::from_utf8(sealed.to_json()).unwrap();
    assert!(!text.contains("aHVudGVyMg=="), "{text}");
    assert!(
        !text.contains("password") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(
        text.contains("\"team\":\"db\""),
        "other annotations stay readable: {text}"
    );
    assert!(text.contains("drover:enc:aesgcm:v1:a:"), "{text}");
    assert_eq!(*enc.open(Arc::new(sealed)).unwrap(), secret("db"));
}

#[test]
fn every_seal_uses_a_fresh_nonce() {
    let enc = encryption(&[("a", KEY_A)]);
    assert_ne!(enc.seal(secret("db")), enc.seal(secret("db")));
}

#[test]
fn other_kinds_and_servers_without_keys_store_plaintext() {
    let plain = SecretEncryption::default();
    assert_eq!(plain.seal(secret("db")), secret("db"));
    let mut cm = secret("cm");
    cm.kind = "ConfigMap".into();
    assert_eq!(encryption(&[("a", KEY_A)]).seal(cm.clone()), cm);
}

#[test]
fn rotation_reads_old_keys_and_writes_with_the_first() {
    let old = encryption(&[("a", KEY_A)]).seal(secret("db"));
    let rotated = encryption(&[("b", KEY_B), ("a", KEY_A)]);
    assert_eq!(*rotated.open(Arc::new(old)).unwrap(), secret("db"));
    let new = rotated.seal(secret("db"));
    assert!(String::from_utf8(new.to_json()).unwrap().contains(":v1:b:"));
}

#[test]
fn a_removed_key_is_named_in_the_error() {
    let old = Arc::new(encryption(&[("a", KEY_A)]).seal(secret("db")));
    let err = encryption(&[("b", KEY_B)]).open(old.clone()).unwrap_err();
    assert!(
        matches!(&err, EncryptionError::UnknownKey { key, .. } if key == "a"),
        "{err}"
    );
    assert!(err.to_string().contains("default/db"), "{err}");
    let err = SecretEncryption::default().open(old).unwrap_err();
    assert!(matches!(err, EncryptionError::NoKeys { .. }), "{err}");
}

#[test]
fn a_different_key_under_the_same_name_or_a_moved_value_fails_authentication() {
    let sealed = encryption(&[("a", KEY_A)]).seal(secret("db"));
    let err = encryption(&[("a", KEY_B)])
        .open(Arc::new(sealed.clone()))
        .unwrap_err();
    assert!(matches!(err, EncryptionError::Open { .. }), "{err}");
    let mut moved = sealed;
    moved.metadata.name = "other".into();
    let err = encryption(&[("a", KEY_A)])
        .open(Arc::new(moved))
        .unwrap_err();
    assert!(matches!(err, EncryptionError::Open { .. }), "{err}");
}

#[test]
fn identity_first_writes_plaintext_but_still_reads_sealed() {
    let sealed = encryption(&[("a", KEY_A)]).seal(secret("db"));
    let text = key_file(&format!("  - identity: {{}}\n{}", aesgcm(&[("a", KEY_A)])));
    let enc = SecretEncryption::new(Some(KeyConfig::parse(&text).unwrap()));
    assert!(!enc.encrypts());
    assert_eq!(enc.seal(secret("db")), secret("db"));
    assert_eq!(*enc.open(Arc::new(sealed)).unwrap(), secret("db"));
}

#[test]
fn malformed_key_files_say_what_is_wrong() {
    let cases = [
        (
            key_file(&aesgcm(&[("a", "c2hvcnQ=")])),
            "5 bytes, expected 32",
        ),
        (key_file(&aesgcm(&[("a", "ab!cd")])), "not base64"),
        (key_file(&aesgcm(&[("a:b", KEY_A)])), "without ':'"),
        (
            key_file(&aesgcm(&[("a", KEY_A), ("a", KEY_B)])),
            "listed twice",
        ),
        (key_file("  - identity: {}\n"), "no aesgcm keys"),
        (key_file(&aesgcm(&[]).replace("aesgcm", "aescbc")), "aescbc"),
        ("kind: Secret\n".to_string(), "apiVersion"),
    ];
    for (text, expected) in cases {
        let err = KeyConfig::parse(&text).unwrap_err();
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
    }
}

#[test]
fn a_missing_key_file_is_named() {
    let err = KeyConfig::load(std::path::Path::new("/nonexistent/keys.yaml")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/keys.yaml"), "{err}");
}

#[test]
fn a_generated_key_file_parses_and_differs_each_time() {
    let a = KeyConfig::parse(&key_file::generate("k1")).unwrap();
    let b = KeyConfig::parse(&key_file::generate("k1")).unwrap();
    assert_eq!(a.keys[0].name, "k1");
    assert!(a.encrypt_writes);
    assert_ne!(a.keys[0].secret, b.keys[0].secret);
}
