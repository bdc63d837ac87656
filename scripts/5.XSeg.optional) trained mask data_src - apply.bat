@echo off
rem 5.XSeg.optional) trained mask data_src - apply: bake the XSeg mask trained in workspace/model
rem into every face of data_src/aligned (training and merging then use it). Safe to stop and rerun.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" xseg apply ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
