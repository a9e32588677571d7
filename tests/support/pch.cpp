// The translation unit that carries the tests' precompiled headers
// (tests/CMakeLists.txt, e2s_test_pch).
