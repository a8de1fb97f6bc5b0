//! The access rule, written out: every route with the access it needs and what it does, and the
//! answer each cell must get.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webhooks_model::ids::WebhookId;

use super::{Access, Caller, Cell, Effect, Expected, Owner, Route, Target, Tenant, World};

/// Every route and verb the API serves (and one unserved verb of several paths).
pub(super) fn routes() -> Vec<Route> {
    use Access::{Account, Anyone, ApiKey, Deletion, Hook, Master, Nobody, NotServed};
    use Effect::{
        CreatesAccount, CreatesHook, DeletesAccount, DeletesHook, PublishesEvent, PublishesJob, Reads, Writes,
    };
    let route = |method: Method, path, access, success, effect| Route { method, path, access, success, effect };
    let (ok, created, accepted) = (StatusCode::OK, StatusCode::CREATED, StatusCode::ACCEPTED);
    // The "success" of a route nobody may call, never expected.
    let never = StatusCode::FORBIDDEN;
    vec![
        route(Method::GET, "/v2/accounts/{A}/webhooks", Account, ok, Reads),
        route(Method::PUT, "/v2/accounts/{A}/webhooks", Account, created, CreatesHook),
        route(Method::PATCH, "/v2/accounts/{A}/webhooks", Account, ok, Writes),
        route(Method::GET, "/v2/accounts/{A}/descendants/webhooks", Account, ok, Reads),
        route(Method::PUT, "/v2/accounts/{A}/descendants/webhooks", Account, created, CreatesHook),
        route(Method::PATCH, "/v2/accounts/{A}/descendants/webhooks", Account, ok, Writes),
        route(Method::GET, "/v2/accounts/{A}/webhooks/attempts", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/webhooks/samples", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/webhooks/samples/webhooks_parking", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/webhooks/{H}", Hook, ok, Reads),
        route(Method::POST, "/v2/accounts/{A}/webhooks/{H}", Hook, ok, Writes),
        route(Method::PATCH, "/v2/accounts/{A}/webhooks/{H}", Hook, ok, Writes),
        route(Method::DELETE, "/v2/accounts/{A}/webhooks/{H}", Hook, ok, DeletesHook),
        route(Method::GET, "/v2/accounts/{A}/webhooks/{H}/attempts", Hook, ok, Reads),
        route(Method::PUT, "/v2/accounts/{A}/webhooks/{H}/test", Hook, accepted, PublishesJob),
        route(Method::PUT, "/v2/accounts/{A}/webhooks/{H}/attempts/replay", Hook, accepted, PublishesJob),
        route(
            Method::PUT,
            "/v2/accounts/{A}/webhooks/{H}/attempts/{T}/resend",
            Access::Attempt,
            accepted,
            PublishesJob,
        ),
        route(Method::GET, "/v2/accounts/{A}", Account, ok, Reads),
        route(Method::PUT, "/v2/accounts/{A}", Account, created, CreatesAccount),
        route(Method::POST, "/v2/accounts/{A}", Account, ok, Writes),
        route(Method::PATCH, "/v2/accounts/{A}", Account, ok, Writes),
        route(Method::DELETE, "/v2/accounts/{A}", Deletion, ok, DeletesAccount),
        route(Method::GET, "/v2/accounts/{A}/children", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/descendants", Account, ok, Reads),
        route(Method::GET, "/v2/accounts/{A}/api_key", Account, ok, Reads),
        route(Method::PUT, "/v2/api_auth", ApiKey, created, Reads),
        route(Method::POST, "/v2/events", Master, accepted, PublishesEvent),
        route(Method::GET, "/v2/webhooks", Anyone, ok, Reads),
        route(Method::PUT, "/v2/webhooks", Nobody, never, Writes),
        route(Method::PATCH, "/v2/webhooks", Nobody, never, Writes),
        route(Method::GET, "/v2/webhooks/samples", Anyone, ok, Reads),
        route(Method::GET, "/v2/webhooks/samples/webhooks_parking", Anyone, ok, Reads),
        route(Method::GET, "/v2/webhooks/anything", Nobody, never, Reads),
        route(Method::POST, "/v2/webhooks/anything", Nobody, never, Writes),
        route(Method::PATCH, "/v2/webhooks/anything", Nobody, never, Writes),
        route(Method::DELETE, "/v2/webhooks/anything", Nobody, never, Writes),
        route(Method::DELETE, "/v2/accounts/{A}/webhooks", NotServed("GET, PUT, PATCH"), never, Writes),
        route(Method::POST, "/v2/accounts/{A}/webhooks/attempts", NotServed("GET"), never, Writes),
        route(Method::PUT, "/v2/accounts/{A}/webhooks/{H}", NotServed("GET, POST, PATCH, DELETE"), never, Writes),
        route(Method::GET, "/v2/accounts/{A}/webhooks/{H}/test", NotServed("PUT"), never, Reads),
        route(Method::POST, "/v2/accounts/{A}/children", NotServed("GET"), never, Writes),
        route(Method::DELETE, "/v2/api_auth", NotServed("PUT"), never, Writes),
        route(Method::GET, "/v2/events", NotServed("POST"), never, Reads),
    ]
}

impl Expected {
    fn refusal(status: StatusCode, message: &'static str, data: Value) -> Self {
        Expected::Refusal { status, message, data }
    }

    fn invalid_token() -> Self {
        Self::refusal(StatusCode::UNAUTHORIZED, "invalid credentials", json!({}))
    }

    fn no_token() -> Self {
        Self::refusal(StatusCode::UNAUTHORIZED, "invalid_credentials", json!({"message": "invalid credentials"}))
    }

    fn forbidden() -> Self {
        Self::refusal(StatusCode::FORBIDDEN, "forbidden", json!({"message": "forbidden"}))
    }

    fn unknown(id: &str) -> Self {
        Self::refusal(StatusCode::NOT_FOUND, "bad_identifier", json!({"cause": id, "message": "bad identifier"}))
    }
}

/// The access rule (see the module documentation), for one cell naming `hook`.
pub(super) fn expected(world: &World, cell: Cell<'_>, hook: &WebhookId) -> Expected {
    if cell.caller.has_invalid_token() {
        return Expected::invalid_token();
    }
    let route = cell.route;
    let caller = match cell.caller {
        Caller::Token(tenant) => Some(tenant),
        _ => None,
    };
    match route.access {
        Access::NotServed(_) => {
            return Expected::refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_method",
                json!({"message": "method not allowed"}),
            );
        }
        Access::Anyone => return Expected::Success(route.success),
        Access::ApiKey if cell.target == Target::Unknown => return Expected::invalid_token(),
        Access::ApiKey => return Expected::Success(route.success),
        Access::Master | Access::Nobody => {
            return match caller {
                None => Expected::no_token(),
                Some(Tenant::Master) if route.access == Access::Master => Expected::Success(route.success),
                Some(_) => Expected::forbidden(),
            };
        }
        Access::Account | Access::Hook | Access::Attempt | Access::Deletion => {}
    }
    let account = match cell.target {
        Target::Malformed => {
            return Expected::refusal(
                StatusCode::NOT_FOUND,
                "bad identifier",
                json!({"message": "invalid account_id 'nothex'"}),
            );
        }
        Target::Unknown => return Expected::unknown(world.unknown_account.as_str()),
        Target::Tenant(tenant) => tenant,
    };
    let Some(caller) = caller else { return Expected::no_token() };
    if !caller.may_act_on(account) {
        return Expected::forbidden();
    }
    let owner = cell.owner.unwrap_or(Owner::Nobody);
    match route.access {
        Access::Hook if owner != Owner::Tenant(account) => Expected::unknown(hook.as_str()),
        Access::Attempt if owner != Owner::Tenant(account) => Expected::unknown(world.attempt(owner)),
        Access::Deletion if caller == account => Expected::forbidden(),
        Access::Deletion if account.has_sub_accounts() => Expected::refusal(
            StatusCode::BAD_REQUEST,
            "account has descendants",
            json!({"message": "delete the sub-accounts of this account first"}),
        ),
        _ => Expected::Success(route.success),
    }
}
