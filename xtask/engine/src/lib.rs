//! The build engine behind `cargo xtask`: content hashing of build inputs, a plan of what
//! to build and why, a bounded parallel executor and a crash-safe state store.
//!
//! The engine knows no artifact kind. Plugins (wheels, images) implement
//! [`plan::Builder`]; the data flow is discover -> hash -> plan -> execute -> record ->
//! report, each step its own module.

pub mod atomic;
pub mod buildlock;
pub mod context;
pub mod execute;
pub mod filecache;
pub mod github;
pub mod graph;
pub mod ignore;
pub mod inputs;
pub mod interrupt;
pub mod plan;
pub mod process;
pub mod report;
pub mod shard;
pub mod state;
pub mod timeline;

pub use context::{BuildContext, EntryKind, ExtraFile};
pub use execute::{After, ExecOptions, execute, execute_then, execute_with};
pub use filecache::FileCache;
pub use ignore::DockerIgnore;
pub use inputs::{Change, InputHash, InputManifest};
pub use plan::{BuildJob, BuildReason, Builder, Decision, Plan, PlanItem, Presence, RemoteCache, RemoteHit, Status, Target, TargetReport};
pub use process::{Cmd, ProcessError, Program};
pub use report::Progress;
pub use state::{Output, State, StateStore, TargetRecord};
