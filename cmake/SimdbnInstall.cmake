# Installs the library, its headers, a CMake package (find_package(simdbn) + simdbn::simdbn) and
# a pkg-config file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS simdbn EXPORT simdbnTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/simdbn DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(SIMDBN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/simdbn)
install(EXPORT simdbnTargets NAMESPACE simdbn:: DESTINATION ${SIMDBN_CMAKE_DIR})
configure_package_config_file(cmake/simdbnConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/simdbnConfig.cmake
                              INSTALL_DESTINATION ${SIMDBN_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/simdbnConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/simdbnConfig.cmake
              ${PROJECT_BINARY_DIR}/simdbnConfigVersion.cmake
        DESTINATION ${SIMDBN_CMAKE_DIR})

# A static archive needs its dependencies on the link line; a shared library carries them.
if(BUILD_SHARED_LIBS)
  set(SIMDBN_PC_LIBS_PRIVATE "-lhwy -fopenmp")
  set(SIMDBN_PC_LIBS "-lsimdbn")
else()
  set(SIMDBN_PC_LIBS_PRIVATE "")
  set(SIMDBN_PC_LIBS "-lsimdbn -lhwy -fopenmp -lstdc++ -lm")
endif()
# The .pc file finds its prefix relative to itself, so an installed tree can be moved.
file(RELATIVE_PATH SIMDBN_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig
     ${CMAKE_INSTALL_PREFIX})
configure_file(cmake/simdbn.pc.in ${PROJECT_BINARY_DIR}/simdbn.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/simdbn.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
