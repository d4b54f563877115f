// The wide-lanes suites mean something only if the library they link runs the 16-lane stand-in
// rather than Highway's dispatch: the stand-in calls itself AVX3, on any CPU.
#include <gtest/gtest.h>

#include "simdbn/simdbn.h"

TEST(WideLanes, LibraryRunsTheStandIn) { EXPECT_STREQ("AVX3", simdbn_target_name()); }
