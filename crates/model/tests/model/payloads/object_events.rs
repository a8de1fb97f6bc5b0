//! Object events: which document changes are delivered, and their account and coordinates.

use super::*;

fn object_body(event_name: &str, doc_type: &str, database: &str, id: &str) -> Value {
    let mut body = Fixture::load("object_doc_created_user.json").body().clone();
    body["Event-Name"] = json!(event_name);
    body["Type"] = json!(doc_type);
    body["Database"] = json!(database);
    body["ID"] = json!(id);
    body
}

const ACCOUNT_DB: &str = "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d";

#[test]
fn database_events_are_not_delivered() {
    for name in ["db_created", "db_edited", "db_deleted", "db_views_updated"] {
        let body = object_body(name, "database", ACCOUNT_DB, ACCOUNT_DB);
        let error = KazooEvent::parse("db_created.x.database.y", &body).expect_err("not delivered");
        assert!(matches!(error, EventError::DatabaseEvent(_)), "{name}: {error}");
        assert!(error.is_ignored());
    }
    let body = object_body("doc_edited", "database", ACCOUNT_DB, "x");
    assert!(matches!(KazooEvent::parse("k", &body), Err(EventError::DatabaseEvent(_))));
}

#[test]
fn only_the_configured_object_types_are_delivered() {
    let body = object_body("doc_created", "cdr", ACCOUNT_DB, "x");
    assert_eq!(KazooEvent::parse("k", &body), Err(EventError::UnwatchedObjectType("cdr".to_owned())));
    let event = KazooEvent::parse_with_object_types("k", &body, &["cdr".to_owned()]).expect("configured type");
    assert_eq!(event.lookup_key(), Some("object"));
    let device = object_body("doc_created", "device", ACCOUNT_DB, "x");
    assert!(KazooEvent::parse_with_object_types("k", &device, &["cdr"]).is_err());
}

#[test]
fn account_changes_are_delivered_once_from_the_accounts_database() {
    let from_account_db = object_body("doc_edited", "account", ACCOUNT_DB, ACCOUNT_ID);
    assert_eq!(KazooEvent::parse("k", &from_account_db), Err(EventError::DuplicateAccountChange));
    let from_accounts = object_body("doc_edited", "account", "accounts", ACCOUNT_ID);
    let event = parse("k", &from_accounts);
    assert_eq!(event.account_id, Some(account(ACCOUNT_ID)));
    assert_eq!(
        build(&event),
        object(json!({"id": ACCOUNT_ID, "account_id": ACCOUNT_ID, "action": "doc_edited", "type": "account"}))
    );
}

#[test]
fn the_account_comes_from_any_account_database_spelling_including_modbs() {
    for database in [
        ACCOUNT_DB,
        "account/3a/4b/5c6d7e8f9a0b1c2d3e4f5a6b7c8d",
        "account%2F3a%2F4b%2F5c6d7e8f9a0b1c2d3e4f5a6b7c8d-202403",
    ] {
        let event = parse("k", &object_body("doc_created", "mailbox_message", database, "x"));
        assert_eq!(event.account_id, Some(account(ACCOUNT_ID)), "{database}");
    }
    let error = KazooEvent::parse("k", &object_body("doc_created", "user", "webhooks", "x")).expect_err("no account");
    assert_eq!(error, EventError::NotAccountScoped("webhooks".to_owned()));
}

#[test]
fn the_routing_key_fills_in_missing_document_coordinates() {
    let body = json!({"Event-Category": "configuration", "Event-Name": "doc_deleted"});
    let event = parse(&format!("doc_deleted.{ACCOUNT_DB}.vmbox.abc%2Edef"), &body);
    let EventKind::Object(object) = &event.kind else { panic!("object event") };
    assert_eq!(object.action, ObjectAction::Deleted);
    assert_eq!((object.doc_type.as_str(), object.doc_id.as_str()), ("vmbox", "abc.def"));
    assert_eq!(event.account_id, Some(account(ACCOUNT_ID)));
}
