# Development shell for Silo: Rust toolchain, Python 3.11, maturin, protoc and etcd. Enter with `nix develop`.
{
  description = "Silo: a durable background-job broker on object storage";

  inputs = {
    # Unstable: the crate graph (edition 2024 crates) needs a recent rustc; flake.lock pins it.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = nixpkgs.legacyPackages.${system};
      in
      {
        devShells.default = pkgs.mkShell {
          packages = [
            pkgs.rustc
            pkgs.cargo
            pkgs.clippy
            pkgs.rustfmt
            pkgs.python311
            pkgs.maturin
            pkgs.gnumake
            # protoc and the well-known protos: the etcd-client crate generates its etcd API at
            # build time (docs/cluster.md#why-the-etcd-client-crate).
            pkgs.protobuf
            # The cluster tests start etcd on loopback (docs/cluster.md).
            pkgs.etcd
          ];
          PROTOC = "${pkgs.protobuf}/bin/protoc";
          PROTOC_INCLUDE = "${pkgs.protobuf}/include";
          # pip installs into a project-local virtualenv rather than the read-only store.
          shellHook = ''
            if [ ! -d .venv ]; then python3.11 -m venv .venv; fi
            . .venv/bin/activate
          '';
        };
      });
}
