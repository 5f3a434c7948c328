namespace DevFs.View; internal static class Placeholder{}
