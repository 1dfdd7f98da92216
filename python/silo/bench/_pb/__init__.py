"""Generated Google protobuf messages for the bench (regenerate with ../regen.sh; do not edit)."""
