//! Mints a demo agent identity with a fresh throwaway key and prints it.
//! This is how `examples/demo-agent-identity.jwt` was made:
//!
//! ```sh
//! cargo run --example mint_demo_token > examples/demo-agent-identity.jwt
//! ```
//!
//! The token is unsigned by any real issuer and its key protects nothing;
//! it exists so the README's first command works on a fresh machine.

#[path = "../tests/common/tokens.rs"]
mod tokens;

use serde_json::json;

fn main() {
    let now = tokens::real_now();
    let token = tokens::TokenBuilder::new()
        .claim("agent_runtime_id", json!("rt-demo-0001"))
        .claim("account_id", json!("acct-demo"))
        .claim("chatgpt_user_id", json!("user-demo"))
        .claim("email", json!("demo@example.com"))
        .claim("plan_type", json!("plus"))
        .claim("iat", json!(now))
        .claim("exp", json!(now + 10 * 365 * 24 * 3600))
        .build();
    println!("{token}");
}
