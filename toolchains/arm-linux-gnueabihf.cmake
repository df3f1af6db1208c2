# 32-bit ARM, armv7-a with NEON and VFPv4, hard float (Raspberry Pi 2/3/4 on 32-bit Raspberry Pi OS,
# Snapdragon 400's Cortex-A7). vfpv4 gives the fused multiply-add the NEON kernels use.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_CXX_FLAGS_INIT "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard")
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(EDGESEP_TEST_LAUNCHER qemu-arm -L /usr/arm-linux-gnueabihf CACHE STRING "runs target binaries on the host")
