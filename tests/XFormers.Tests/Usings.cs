global using System;
global using System.Collections.Generic;
global using System.Linq;
global using Shouldly;
global using Xunit;
global using XFormers.Dsl;
global using Half = ILGPU.Half;
