//! One test body run on each backend of a matrix: each database, or each bus.

/// `test_matrix!(case => setup, ...; body, ...)` declares, for each async test body `body(T)`, a
/// module `body` with one test per case: `body::case` runs `body(setup)`. The setup expressions are
/// evaluated inside each test (they may `.await`), with the names of the calling module in scope:
///
/// ```text
/// test_matrix!(in_process => Backend::InProcess, rabbitmq => Backend::RabbitMq; publishes, consumes);
/// test_matrix!(on_sqlite => TestDatabase::sqlite().await, on_postgres => TestDatabase::postgres().await; stores);
/// ```
///
/// Each test runs on four worker threads, so the concurrency a test makes (tasks racing for one
/// row, several consumers) is real even on a two-core machine.
#[macro_export]
macro_rules! test_matrix {
    ($($case:ident => $setup:expr),+ ; $($body:ident),* $(,)?) => {
        $crate::test_matrix!(@bodies [$($case => $setup),+] $($body)*);
    };
    // The cases travel as one token tree, so each body's module can repeat them all.
    (@bodies $cases:tt $($body:ident)*) => {
        $($crate::test_matrix!(@body $body $cases);)*
    };
    (@body $body:ident [$($case:ident => $setup:expr),+]) => {
        mod $body {
            use super::*;

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$body($setup).await;
                }
            )+
        }
    };
}
