//! The commit pipeline: how a write becomes durable and visible.
//!
//! - [`queue`]: where writers hand their encoded batches over: seqnos, the
//!   chunks of framed records bound for the WAL, publishing visibility in
//!   seqno order, and poisoning after a failed sync.
//! - [`wal_task`]: the WAL task, spawned on the store's runtime: takes the
//!   queued chunks as one group, writes them with one durable write (or a
//!   write and an fdatasync), and resolves the group's writers.
//! - [`policy`]: the WAL task's choice of handle for a durable write, as a
//!   pure function of what it observed.
//! - [`hold`]: whether a durable write waits for the writers the last one
//!   released (a policy with state across syncs).
//!
//! The segment files themselves (handles, preallocation, the rewritten
//! last block) are `crate::wal::segment`'s; the commit pipeline decides what
//! goes into them and when.
//!
//! Invariants (each module states its own in detail):
//! - Seqno order = queue order = WAL byte order.
//! - A durable writer resolves `Ok` only after a durable write or an
//!   fdatasync covering its record completed `Ok`.
//! - Readers never see seqno N+1 without N.

pub(crate) mod hold;
pub(crate) mod policy;
pub(crate) mod queue;
pub(crate) mod wal_task;
