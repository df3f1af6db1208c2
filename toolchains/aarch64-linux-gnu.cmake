# Generic 64-bit ARM (armv8-a: every aarch64 board, Raspberry Pi 3/4/5 on a 64-bit OS, Jetson).
# NEON is part of armv8-a; no -mcpu, so the build runs on every core. No LSE atomics are assumed
# (-mno-outline-atomics keeps libatomic/outline helpers out; the runtime uses only plain atomics).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_CXX_FLAGS_INIT "-march=armv8-a -mno-outline-atomics")
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(EDGESEP_TEST_LAUNCHER qemu-aarch64 -L /usr/aarch64-linux-gnu CACHE STRING "runs target binaries on the host")
