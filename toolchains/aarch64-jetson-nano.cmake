# Cortex-A57: Jetson Nano, TX1. A build for this core only (-mcpu: its instructions and
# scheduling); the distributed aarch64 wheel uses aarch64-linux-gnu.cmake, which runs on every core.
include(${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu.cmake)
set(CMAKE_CXX_FLAGS_INIT "-mcpu=cortex-a57 -mno-outline-atomics")
