//! One test body run on each backend of a matrix: each database, or each bus.

/// `test_matrix!(case => setup, ...; body, ...)` declares, for each async test body `body(T)`, a
/// module `body` with one test per case: `body::case` runs `body(setup)`. The setup expressions are
/// evaluated inside each test (they may `.await`), with the names of the calling module in scope:
///
/// ```text
/// test_matrix!(in_process => Backend::InProcess, rabbitmq => Backend::RabbitMq; publishes, consumes);
/// ```
///
/// The usual matrices have a name of their own:
/// - `test_matrix!(databases; body, ...)`: `body::on_sqlite` and `body::on_postgres`, each given
///   a fresh [`TestDatabase`](crate::db::TestDatabase);
/// - `test_matrix!(buses; body, ...)`: `body::in_process` and `body::rabbitmq`, given the
///   [`Backend`](crate::bus::Backend);
/// - `test_matrix!(apps; body, ...)` (feature `api`): `body::on_sqlite` and `body::on_postgres`,
///   each given a `TestApp` over a fresh database.
///
/// Each test runs on four worker threads, so the concurrency a test makes (tasks racing for one
/// row, several consumers) is real even on a two-core machine.
#[macro_export]
macro_rules! test_matrix {
    (databases; $($body:ident),* $(,)?) => {
        $crate::test_matrix!(
            on_sqlite => $crate::db::TestDatabase::sqlite().await,
            on_postgres => $crate::db::TestDatabase::postgres().await;
            $($body),*
        );
    };
    (buses; $($body:ident),* $(,)?) => {
        $crate::test_matrix!(
            in_process => $crate::bus::Backend::InProcess,
            rabbitmq => $crate::bus::Backend::RabbitMq;
            $($body),*
        );
    };
    (apps; $($body:ident),* $(,)?) => {
        $crate::test_matrix!(
            on_sqlite => $crate::app::TestApp::spawn($crate::db::TestDatabase::sqlite().await).await,
            on_postgres => $crate::app::TestApp::spawn($crate::db::TestDatabase::postgres().await).await;
            $($body),*
        );
    };
    ($($case:ident => $setup:expr),+ ; $($body:ident),* $(,)?) => {
        $crate::test_matrix!(@bodies [$($case => $setup),+] $($body)*);
    };
    // The cases travel as one token tree, so each body's module can repeat them all.
    (@bodies $cases:tt $($body:ident)*) => {
        $($crate::test_matrix!(@body $body $cases);)*
    };
    (@body $body:ident [$($case:ident => $setup:expr),+]) => {
        mod $body {
            // For setups naming the caller's items; the usual matrices name none.
            #[allow(unused_imports)]
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
