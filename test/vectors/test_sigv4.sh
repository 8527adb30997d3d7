#!/usr/bin/env bash
# test_sigv4: both AWS SigV4 suites in $NS_VECTORS/sigv4 against src/aws/sigv4.c, run by the unit-test
# binary in its "vectors" mode (see test/unit/test_sigv4.c; the vectors README explains the two
# self-contradictory cases of the original suite and the folded-header difference).
set -u
bin=$NS_BUILD/test/test_sigv4
if [ ! -x "$bin" ]; then
    echo "not ok - $bin not built (make O=<build> first)"
    exit 1
fi
exec "$bin" vectors
