//! The Crossbar stand-in on its own, for `make bench-api`'s Kazoo-mode run: writes the fixture
//! Kazoo account tree into the database at `WEBHOOKS_DATABASE_URL`, serves Crossbar's login and
//! signing keys on 127.0.0.1, prints one line `URL MASTER_API_KEY ACCOUNT_ID TOKEN` (a Kazoo
//! user token of that account), and serves until it is killed.

use webhooks_storage::Store;
use webhooks_test_support::kazoo::{self, CrossbarStandIn, MASTER_API_KEY, SUB1};

#[tokio::main]
async fn main() {
    let url = std::env::var("WEBHOOKS_DATABASE_URL").expect("WEBHOOKS_DATABASE_URL names the database");
    let store = Store::connect(&url, 1).await.expect("the database is reachable");
    store.migrate().await.expect("the database is migrated");
    kazoo::create_tree(&store).await;
    let crossbar = CrossbarStandIn::start().await;
    announce(&format!("{} {MASTER_API_KEY} {SUB1} {}", crossbar.url(), kazoo::token("user_auth")));
    std::future::pending::<()>().await;
}

#[expect(clippy::print_stdout, reason = "the benchmark script reads this one line")]
fn announce(line: &str) {
    println!("{line}");
}
