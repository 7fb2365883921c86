//! Code generated from `proto/` by `build.rs` (protox + tonic-prost-build).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The KServe Open Inference Protocol v2 (`inference.GRPCInferenceService`).
pub mod inference {
    tonic::include_proto!("inference");
}

/// fudo's own services.
pub mod fudo {
    /// Version 1 of fudo's services.
    pub mod v1 {
        tonic::include_proto!("fudo.v1");
    }
}

/// The encoded `FileDescriptorSet` of every proto fudo serves, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fudo_descriptor.bin"));
