@echo off
rem 6) export SAEHD as dfm: write the trained SAEHD model of workspace/model as
rem workspace/model/NAME_SAEHD.dfm, the file DeepFaceLive (and FaceFusion's deep swapper) runs; merge
rem takes it too. Asks "Export quantized" (float16 weights, half the file) on a terminal; no without one.
rem Extra arguments go to main.py (--force-model-name NAME, --quantize, --output-file FILE);
rem set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" exportdfm ^
    --model-dir "%WORKSPACE%\model" ^
    --model SAEHD ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
