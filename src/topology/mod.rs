//! Cluster topology (stub, filled by the topology work).
