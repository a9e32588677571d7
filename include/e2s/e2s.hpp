// Umbrella header for the e2s library.
#pragma once

#include "e2s/assets.hpp"
#include "e2s/auto_model.hpp"
#include "e2s/error.hpp"
#include "e2s/log.hpp"
#include "e2s/options.hpp"
#include "e2s/package.hpp"
#include "e2s/version.hpp"
