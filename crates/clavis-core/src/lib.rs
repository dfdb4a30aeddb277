//! The Clavis domain: every rule lives here.
//!
//! **Invariant:** this crate knows nothing about HTTP, SQL, files or environment variables. It
//! gets time from [`clock::Clock`] and persistence from [`store::Store`].
//!
//! The planes are modules: [`identity`] (tenants, applications, roles), [`credential`] (client
//! secrets and their policy), [`token`] (the client-credentials grant), [`keys`] (key material
//! and signing-key rotation), [`policy`] (RBAC), [`audit`] (the hash-chained record of every
//! change). [`Core`] is the facade the server, CLI and portal call.

pub mod admin;
pub mod audit;
pub mod cache;
pub mod clock;
pub mod credential;
pub mod error;
pub mod events;
pub mod identity;
pub mod keys;
pub mod policy;
pub mod revocation;
pub mod rotation;
pub mod signin;
pub mod store;
pub mod throttle;
pub mod token;
pub mod vault;

mod core;

pub use crate::core::{
    vault_app_id, AdminPatch, ApplicationPatch, BootstrapCredential, BulkLoaded, BulkPlan, Core, CoreSettings, EventRecord, NewApplication,
    OutgoingDelivery, PropertiesPatch, SecretValue, UsageStats, VaultPatch, VaultStateChange, VerifiedToken,
};
pub use error::{CoreError, Result};
