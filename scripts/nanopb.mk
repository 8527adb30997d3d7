# The PB_* defines shared by the nanopb runtime, the generated code and nsign (they must match).
# Read by the Makefile and by scripts/build-deps.sh.
PB_DEFINES := -DPB_FIELD_32BIT=1 -DPB_BUFFER_ONLY=1 -DPB_ENABLE_MALLOC=1
