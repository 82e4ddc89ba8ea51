//! The one route table. Every API route is registered through `OpenApiRouter`, so the OpenAPI
//! document served at `/api/openapi.json` cannot drift from the routes.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{health, middleware};
use crate::state::AppState;
use crate::{agents, auth, bridges, channels, conversations, inbound, outbound, users, visitors, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "OmniChat API", description = "Multi-tenant omnichannel messaging gateway"),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ApiErrorBody)),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "visitor",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("a website visitor's token, from POST /api/widget/{channelInstanceId}/sessions"))
                    .build(),
            ),
        );
    }
}

/// The API routes and their OpenAPI document.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::health))
        .routes(routes!(auth::handlers::register))
        .routes(routes!(auth::handlers::login))
        .routes(routes!(auth::handlers::refresh))
        .routes(routes!(auth::handlers::logout))
        .routes(routes!(auth::handlers::me))
        .routes(routes!(users::handlers::list, users::handlers::invite))
        .routes(routes!(users::handlers::get, users::handlers::update, users::handlers::remove))
        .routes(routes!(channels::handlers::types))
        .routes(routes!(channels::handlers::list, channels::handlers::create))
        .routes(routes!(channels::handlers::get, channels::handlers::update, channels::handlers::remove))
        .routes(routes!(channels::handlers::connect))
        .routes(routes!(channels::handlers::disconnect))
        .routes(routes!(conversations::handlers::list))
        .routes(routes!(conversations::handlers::get, conversations::handlers::update))
        .routes(routes!(conversations::handlers::messages))
        .routes(routes!(conversations::handlers::read))
        .routes(routes!(agents::handlers::runs))
        .routes(routes!(agents::handlers::list, agents::handlers::create))
        .routes(routes!(agents::handlers::get, agents::handlers::update, agents::handlers::remove))
        .routes(routes!(agents::handlers::list_teams, agents::handlers::create_team))
        .routes(routes!(agents::handlers::get_team, agents::handlers::update_team, agents::handlers::remove_team))
        .routes(routes!(conversations::handlers::customers))
        .routes(routes!(conversations::handlers::customer))
        .routes(routes!(outbound::handlers::send))
        .routes(routes!(outbound::handlers::list))
        .routes(routes!(outbound::handlers::retry))
        .routes(routes!(inbound::webhooks::channel_webhook_get, inbound::webhooks::channel_webhook))
        .routes(routes!(inbound::webhooks::shared_webhook_get, inbound::webhooks::shared_webhook))
        .routes(routes!(inbound::webhooks::telegram_bot))
        .routes(routes!(inbound::webhooks::facebook_verify, inbound::webhooks::facebook))
        .routes(routes!(bridges::telegram::handlers::start))
        .routes(routes!(bridges::telegram::handlers::confirm))
        .routes(routes!(bridges::telegram::handlers::logout))
        .routes(routes!(bridges::whatsapp::handlers::qr))
        .routes(routes!(bridges::whatsapp::handlers::qr_image))
        .routes(routes!(bridges::whatsapp::handlers::pair_code))
        .routes(routes!(inbound::media::media))
        .routes(routes!(webhooks::handlers::list, webhooks::handlers::create))
        .routes(routes!(webhooks::handlers::get, webhooks::handlers::update, webhooks::handlers::remove))
        .routes(routes!(webhooks::handlers::deliveries))
        .routes(routes!(webhooks::handlers::delivery))
        .routes(routes!(webhooks::handlers::redeliver))
        .routes(routes!(webhooks::handlers::test))
        .routes(routes!(crate::http::metrics::scrape))
        .split_for_parts()
}

/// The visitor transport's routes (`/api/widget/...`): CORS of their own (per channel, by the
/// [guard](visitors::guard)), so the host's `CORS_ORIGIN` never applies to them.
pub fn visitor_api(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // (The guard is layered on in `router`, after the fallbacks.)
    let max_upload = state.config.visitors.max_upload_bytes + 64 * 1024;
    let uploads = OpenApiRouter::new().routes(routes!(visitors::handlers::upload)).layer(DefaultBodyLimit::max(max_upload));
    OpenApiRouter::new()
        .routes(routes!(visitors::handlers::session))
        .routes(routes!(visitors::handlers::messages, visitors::handlers::post_message))
        .routes(routes!(visitors::handlers::typing))
        .routes(routes!(visitors::handlers::read))
        .merge(uploads)
        .routes(routes!(visitors::handlers::download))
        .split_for_parts()
}

/// Swagger UI for `/api/openapi.json` at `/api/docs`, its assets built into the binary. Its pages
/// get a CSP of their own: same-origin scripts, styles (Swagger UI sets inline styles) and images.
fn docs() -> Router<AppState> {
    let ui = utoipa_swagger_ui::SwaggerUi::new("/api/docs")
        // No validator badge: Swagger UI would fetch it from validator.swagger.io.
        .config(utoipa_swagger_ui::Config::new(["/api/openapi.json"]).validator_url("none"));
    Router::from(ui).layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        ),
    ))
}

pub fn router(state: AppState) -> Router {
    let (api, mut openapi) = api();
    let (visitor_api, visitor_openapi) = visitor_api(&state);
    openapi.merge(visitor_openapi);
    // Served as JSON with an example for every body (see `examples`).
    let mut document = serde_json::to_value(&openapi).unwrap_or_default();
    super::examples::fill(&mut document);
    // Kept as its JSON text (110 KB), not as the tree of values (several times that, for the
    // process's life), and answered without a copy.
    let openapi = axum::body::Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
    drop(document);
    let json = [(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"))];
    let router = api
        .route("/api/openapi.json", get(move || std::future::ready((json.clone(), openapi.clone()))))
        .merge(docs())
        .route("/", get(super::console::index))
        .route("/console/{*path}", get(super::console::file))
        .route("/widget.js", get(visitors::assets::script))
        .route("/widget/demo", get(visitors::assets::demo))
        .route("/widget/demo.css", get(visitors::assets::demo_css))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .with_state(state.clone())
        .layer(state.realtime.layer())
        // Runs before the Socket.IO layer: a socket keeps only owned copies of its handshake.
        .layer(tower::util::MapRequestLayer::new(crate::realtime::handshake::compactor(&state.config.socket_path)));
    // The guard goes on after the fallbacks, so it answers preflights and unknown methods too.
    let visitor_api = visitor_api
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), visitors::guard))
        .with_state(state.clone());
    middleware::apply(router, visitor_api, &state.config)
}
