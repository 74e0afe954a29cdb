# Shortcuts over scripts/ and CMake. The README's two commands are
# scripts/run.sh and scripts/test.sh, which need nothing but bash.
.PHONY: all run test build format clean

all: build

build:
	bash scripts/build.sh

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build/bin build/lib build/asan build/CMakeFiles build/CMakeCache.txt
