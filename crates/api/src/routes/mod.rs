//! The route table. Each path lists its methods; any other method answers 405 with `Allow`, and
//! unknown paths answer Crossbar's 404.

mod accounts;
mod attempts;
mod events;
mod system;
mod webhooks;

use actix_web::guard;
use actix_web::http::Method;
use actix_web::web::{self, Data, ServiceConfig};

use crate::ApiState;
use crate::crossbar::{ApiError, Reply};

/// A handler refusing every method but `allow`.
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<Reply, _>(ApiError::MethodNotAllowed { allow }) })
}

async fn not_found() -> Result<Reply, ApiError> {
    Err(ApiError::NotFound)
}

/// In Kazoo mode accounts, their API keys and `api_auth` are Kazoo's: a write of an account,
/// `GET .../api_key` and `PUT /v2/api_auth` answer 404 `not_found`, as Crossbar answers a path no
/// loaded module serves, before any credential is looked at (a proxy in front sends these paths
/// to Crossbar itself: docs/kazoo.md#accounts-in-kazoo-mode).
fn kazoo_owns(writes_only: bool) -> actix_web::Route {
    web::route()
        .guard(guard::fn_guard(move |context| {
            let kazoo_mode = context.app_data::<Data<ApiState>>().is_some_and(|state| state.accounts_are_kazoos());
            kazoo_mode && !(writes_only && context.head().method == Method::GET)
        }))
        .to(not_found)
}

/// Registers every route. Paths are matched in order: the busiest come first, and specific paths
/// come before the `{webhook_id}` patterns they overlap.
pub fn configure(config: &mut ServiceConfig) {
    let account = "/v2/accounts/{account_id}";
    config
        // Account scope: webhooks.
        .service(
            web::resource([format!("{account}/webhooks"), format!("{account}/descendants/webhooks")])
                .route(web::get().to(webhooks::list))
                .route(web::put().to(webhooks::create))
                .route(web::patch().to(webhooks::reenable))
                .default_service(not_allowed("GET, PUT, PATCH")),
        )
        .service(
            web::resource(format!("{account}/webhooks/attempts"))
                .route(web::get().to(attempts::account_attempts))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(format!("{account}/webhooks/samples"))
                .route(web::get().to(system::account_sample_ids))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(format!("{account}/webhooks/samples/{{sample_id}}"))
                .route(web::get().to(system::account_sample))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(format!("{account}/webhooks/{{webhook_id}}"))
                .route(web::get().to(webhooks::fetch))
                .route(web::post().to(webhooks::replace))
                .route(web::patch().to(webhooks::patch))
                .route(web::delete().to(webhooks::delete))
                .default_service(not_allowed("GET, POST, PATCH, DELETE")),
        )
        .service(
            web::resource(format!("{account}/webhooks/{{webhook_id}}/attempts"))
                .route(web::get().to(attempts::hook_attempts))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(format!("{account}/webhooks/{{webhook_id}}/test"))
                .route(web::put().to(attempts::test))
                .default_service(not_allowed("PUT")),
        )
        .service(
            web::resource(format!("{account}/webhooks/{{webhook_id}}/attempts/replay"))
                .route(web::put().to(attempts::replay))
                .default_service(not_allowed("PUT")),
        )
        .service(
            web::resource(format!("{account}/webhooks/{{webhook_id}}/attempts/{{attempt_id}}/resend"))
                .route(web::put().to(attempts::resend))
                .default_service(not_allowed("PUT")),
        )
        .service(
            web::resource("/v2/api_auth")
                .route(kazoo_owns(false))
                .route(web::put().to(accounts::api_auth))
                .default_service(not_allowed("PUT")),
        )
        // System scope.
        .service(web::resource("/v2/events").route(web::post().to(events::ingest)).default_service(not_allowed("POST")))
        .service(
            web::resource("/v2/webhooks")
                .route(web::get().to(system::definitions))
                .route(web::put().to(system::refuse))
                .route(web::patch().to(system::refuse))
                .default_service(not_allowed("GET, PUT, PATCH")),
        )
        .service(
            web::resource("/v2/webhooks/samples")
                .route(web::get().to(system::sample_ids))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/v2/webhooks/samples/{sample_id}")
                .route(web::get().to(system::sample))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/v2/webhooks/{rest:.*}")
                .route(web::get().to(system::refuse))
                .route(web::post().to(system::refuse))
                .route(web::patch().to(system::refuse))
                .route(web::delete().to(system::refuse))
                .default_service(not_allowed("GET, POST, PATCH, DELETE")),
        )
        // Account scope: accounts.
        .service(
            web::resource(account)
                .route(kazoo_owns(true))
                .route(web::get().to(accounts::fetch))
                .route(web::put().to(accounts::create_child))
                .route(web::post().to(accounts::replace))
                .route(web::patch().to(accounts::patch))
                .route(web::delete().to(accounts::delete))
                .default_service(not_allowed("GET, PUT, POST, PATCH, DELETE")),
        )
        .service(
            web::resource(format!("{account}/children"))
                .route(web::get().to(accounts::children))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(format!("{account}/descendants"))
                .route(web::get().to(accounts::descendants))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(format!("{account}/api_key"))
                .route(kazoo_owns(false))
                .route(web::get().to(accounts::api_key))
                .default_service(not_allowed("GET")),
        )
        .default_service(web::to(not_found));
}
