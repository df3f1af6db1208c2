# Carmel (armv8.2-a): Jetson Xavier NX, AGX Xavier. GCC 12 has no -mcpu=carmel: its architecture
# (armv8.2-a with fp16 and dotprod) and a close tuning model stand in. A build for this core only;
# the distributed aarch64 wheel uses aarch64-linux-gnu.cmake, which runs on every core.
include(${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu.cmake)
set(CMAKE_CXX_FLAGS_INIT "-march=armv8.2-a+fp16+dotprod -mtune=cortex-a76 -mno-outline-atomics")
